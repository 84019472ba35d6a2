using Strata.TestKit;

namespace Strata.Cli.Tests;

/// <summary>
/// <c>strata img bitmap</c>, <c>info</c>'s bitmaps and <c>convert --bitmaps</c>, with qemu-img and
/// qemu-storage-daemon as the oracle, and commit and resize keeping bitmaps as qemu-img does.
/// </summary>
public sealed class BitmapCommandTests : IDisposable
{
    private readonly TempFolder _dir = new("bmcli");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task OperationsApplyInOrderAndQemuSeesTheSameBitmaps()
    {
        string image = Image("a.qcow2");
        StrataCli.ImgOk("bitmap", "--add", image, "b0");
        StrataCli.ImgOk("bitmap", "--add", "-g", "4k", "--disable", image, "fine");
        QemuIo.Ok(image, "qcow2", "write 1M 300k", "write 40M 4k");
        StrataCli.ImgOk("bitmap", "--merge", "b0", image, "fine");
        StrataCli.ImgOk("bitmap", "--add", image, "gone", "--remove");

        Assert.Equal(Processes.Ok("qemu-img", "info", image), StrataCli.ImgOk("info", image).Stdout);
        Assert.Contains("\"name\": \"fine\"", StrataCli.ImgOk("info", "--output=json", image).Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "check", image).ExitCode);
    }

    [Fact]
    public async Task ClearAndDisableAreWhatQemuImgMakesOfTheSameImage()
    {
        string ours = Image("ours.qcow2");
        Processes.Ok("qemu-img", "bitmap", "--add", ours, "b0");
        QemuIo.Ok(ours, "qcow2", "write 0 1M");
        string theirs = _dir.File("theirs.qcow2");
        File.Copy(ours, theirs);

        StrataCli.ImgOk("bitmap", "--add", "--disable", ours, "b1", "--merge", "b0");
        Processes.Ok("qemu-img", "bitmap", "--add", "--disable", theirs, "b1", "--merge", "b0");
        Assert.Equal(InfoWithoutDiskSize(theirs).Replace(theirs, ours, StringComparison.Ordinal), InfoWithoutDiskSize(ours));
        Assert.Equal(await Qsd.BitmapSha256Async(theirs, "b1", _dir), await Qsd.BitmapSha256Async(ours, "b1", _dir));

        StrataCli.ImgOk("bitmap", "--clear", ours, "b1");
        Processes.Ok("qemu-img", "bitmap", "--clear", theirs, "b1");
        Assert.Equal(await Qsd.BitmapSha256Async(theirs, "b1", _dir), await Qsd.BitmapSha256Async(ours, "b1", _dir));
    }

    [Theory]
    [InlineData("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge", "IMAGE", "b0")]
    [InlineData("granularity only supported with --add", "--remove", "-g", "64k", "IMAGE", "b0")]
    [InlineData("-F only supported with -b", "--merge", "b0", "-F", "qcow2", "IMAGE", "b1")]
    [InlineData("-b only supported with --merge", "--add", "-b", "x", "IMAGE", "b1")]
    [InlineData("Expecting filename and bitmap name", "--add", "IMAGE")]
    [InlineData("Operation remove on bitmap nope failed: Dirty bitmap 'nope' not found", "--remove", "IMAGE", "nope")]
    [InlineData("Operation add on bitmap b0 failed: Bitmap already exists: b0", "--add", "IMAGE", "b0")]
    [InlineData("Operation merge on bitmap b0 failed: Dirty bitmap 'nope' not found", "--merge", "nope", "IMAGE", "b0")]
    public void BadRequestsFailWithQemuImgsLine(string message, params string[] args)
    {
        string image = Image("e.qcow2");
        Processes.Ok("qemu-img", "bitmap", "--add", image, "b0");
        var result = StrataCli.Img(["bitmap", .. args.Select(a => a == "IMAGE" ? image : a)]);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"strata img: {message}\n", result.Stderr);
    }

    [Fact]
    public async Task AnInconsistentBitmapCanOnlyBeRemoved()
    {
        string image = await InUseImageAsync();
        var result = StrataCli.Img("bitmap", "--clear", image, "b0");
        Assert.Equal("strata img: Operation clear on bitmap b0 failed: Bitmap 'b0' is inconsistent and cannot be used\n", result.Stderr);
        StrataCli.ImgOk("bitmap", "--remove", image, "b0");
        Assert.Equal(0, Processes.Run("qemu-img", "check", image).ExitCode);
    }

    [Fact]
    public async Task ConvertWithBitmapsCopiesTheirBits()
    {
        string source = Image("src.qcow2");
        Processes.Ok("qemu-img", "bitmap", "--add", source, "b0");
        Processes.Ok("qemu-img", "bitmap", "--add", "-g", "512k", "--disable", source, "coarse");
        QemuIo.Ok(source, "qcow2", "write 3M 1M");
        Processes.Ok("qemu-img", "bitmap", "--merge", "b0", source, "coarse");
        string target = _dir.File("dst.qcow2");

        StrataCli.ImgOk("convert", "--bitmaps", "-O", "qcow2", source, target);
        Assert.Equal(0, Processes.Run("qemu-img", "check", target).ExitCode);
        Assert.Equal(InfoWithoutDiskSize(source).Replace(source, target, StringComparison.Ordinal), InfoWithoutDiskSize(target));
        foreach (string name in new[] { "b0", "coarse" })
        {
            Assert.Equal(await Qsd.BitmapSha256Async(source, name, _dir), await Qsd.BitmapSha256Async(target, name, _dir));
        }
    }

    [Fact]
    public async Task ConvertRefusesAnInconsistentBitmapUnlessToldToSkipIt()
    {
        string source = await InUseImageAsync();
        Processes.Ok("qemu-img", "bitmap", "--add", source, "good");
        string target = _dir.File("dst.qcow2");

        var refused = StrataCli.Img("convert", "--bitmaps", "-O", "qcow2", source, target);
        Assert.Equal(1, refused.ExitCode);
        Assert.StartsWith("strata img: Cannot copy inconsistent bitmap 'b0'.", refused.Stderr);
        Assert.False(File.Exists(target));

        var skipped = StrataCli.ImgOk("convert", "--bitmaps", "--skip-broken-bitmaps", "-O", "qcow2", source, target);
        Assert.Contains("Skipping inconsistent bitmap 'b0'", skipped.Stderr);
        Assert.Contains("name: good", Processes.Ok("qemu-img", "info", target));
        Assert.DoesNotContain("name: b0", Processes.Ok("qemu-img", "info", target));

        var raw = StrataCli.Img("convert", "--bitmaps", "-O", "raw", _dir.File("dst.qcow2"), _dir.File("dst.raw"));
        Assert.Equal("strata img: Format driver 'raw' does not support bitmaps\n", raw.Stderr);
        Assert.False(File.Exists(_dir.File("dst.raw")));
    }

    [Fact]
    public async Task CommitAndResizeKeepBitmapsAsQemuImgDoes()
    {
        foreach (string tool in new[] { "qemu", "strata" })
        {
            string base_ = Image($"{tool}-base.qcow2");
            Processes.Ok("qemu-img", "bitmap", "--add", base_, "b0");
            QemuIo.Ok(base_, "qcow2", "write 0 64k");
            string top = _dir.File($"{tool}-top.qcow2");
            Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", base_, "-F", "qcow2", top);
            Processes.Ok("qemu-img", "bitmap", "--add", top, "t0");
            QemuIo.Ok(top, "qcow2", "write 5M 200k", "write 60M 1M");
            if (tool == "qemu")
            {
                Processes.Ok("qemu-img", "commit", top);
                Processes.Ok("qemu-img", "resize", base_, "128M");
            }
            else
            {
                StrataCli.ImgOk("commit", top);
                StrataCli.ImgOk("resize", base_, "128M");
            }

            Assert.Equal(0, Processes.Run("qemu-img", "check", base_).ExitCode);
            Assert.Equal(0, Processes.Run("qemu-img", "check", top).ExitCode);
        }

        Assert.Equal(await Qsd.BitmapSha256Async(_dir.File("qemu-base.qcow2"), "b0", _dir), await Qsd.BitmapSha256Async(_dir.File("strata-base.qcow2"), "b0", _dir));
        Assert.Equal(await Qsd.BitmapSha256Async(_dir.File("qemu-top.qcow2"), "t0", _dir), await Qsd.BitmapSha256Async(_dir.File("strata-top.qcow2"), "t0", _dir));
    }

    [Fact]
    public async Task ResizeRefusesABitmapLeftInUseAsQemuImgDoes()
    {
        string ours = await InUseImageAsync();
        string theirs = _dir.File("theirs.qcow2");
        File.Copy(ours, theirs);
        string before = InfoWithoutDiskSize(ours);

        var expected = Processes.Run("qemu-img", "resize", theirs, "128M");
        var result = StrataCli.Img("resize", ours, "128M");
        Assert.Equal(1, expected.ExitCode);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal(expected.Stderr.Split('\n')[0].Replace("qemu-img:", "strata img:", StringComparison.Ordinal), result.Stderr.Split('\n')[0]);
        Assert.Equal(before, InfoWithoutDiskSize(ours));
        Assert.Equal(InfoWithoutDiskSize(theirs).Replace(theirs, ours, StringComparison.Ordinal), InfoWithoutDiskSize(ours));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RebaseKeepsBitmapsAsQemuImgDoes(bool unsafeMode)
    {
        string oldBase = Image("old.qcow2"), newBase = Image("new.qcow2");
        QemuIo.Ok(oldBase, "qcow2", "write -P 1 0 1M", "write -P 2 10M 512k", "write -P 5 30M 4k");
        QemuIo.Ok(newBase, "qcow2", "write -P 3 0 64k", "write -P 2 10M 512k", "write -P 6 40M 8k");
        foreach (string tool in new[] { "qemu", "strata" })
        {
            string top = _dir.File($"{tool}-top.qcow2");
            Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", oldBase, "-F", "qcow2", top);
            Processes.Ok("qemu-img", "bitmap", "--add", top, "b0");
            Processes.Ok("qemu-img", "bitmap", "--add", "-g", "4k", "--disable", top, "off");
            QemuIo.Ok(top, "qcow2", "write -P 7 5M 200k", "write -P 8 10M 4k");
            Processes.Ok("qemu-img", "bitmap", "--merge", "b0", top, "off");
            string[] args = unsafeMode ? ["rebase", "-u", "-b", newBase, "-F", "qcow2", top] : ["rebase", "-b", newBase, "-F", "qcow2", top];
            if (tool == "qemu")
            {
                Processes.Ok("qemu-img", args);
            }
            else
            {
                StrataCli.ImgOk(args);
            }

            Assert.Equal(0, Processes.Run("qemu-img", "check", top).ExitCode);
        }

        string qemuTop = _dir.File("qemu-top.qcow2"), strataTop = _dir.File("strata-top.qcow2");
        Assert.Equal(InfoWithoutDiskSize(qemuTop).Replace(qemuTop, strataTop, StringComparison.Ordinal), InfoWithoutDiskSize(strataTop));
        foreach (string name in new[] { "b0", "off" })
        {
            Assert.Equal(await Qsd.BitmapSha256Async(qemuTop, name, _dir), await Qsd.BitmapSha256Async(strataTop, name, _dir));
        }
    }

    [Fact]
    public async Task MergeFromAnotherImageIsWhatQemuImgMakes()
    {
        string source = Image("src.qcow2");
        Processes.Ok("qemu-img", "bitmap", "--add", "-g", "4k", source, "s");
        QemuIo.Ok(source, "qcow2", "write 3M 5k", "write 20M 1M", "write 63M 512");
        string ours = Image("ours.qcow2");
        Processes.Ok("qemu-img", "bitmap", "--add", "--disable", ours, "b0");
        QemuIo.Ok(ours, "qcow2", "write 0 4k");
        Processes.Ok("qemu-img", "bitmap", "--enable", ours, "b0");
        QemuIo.Ok(ours, "qcow2", "write 40M 4k");
        string theirs = _dir.File("theirs.qcow2");
        File.Copy(ours, theirs);
        string sourceInfo = InfoWithoutDiskSize(source);

        StrataCli.ImgOk("bitmap", "--merge", "s", "-b", source, "-F", "qcow2", ours, "b0");
        Processes.Ok("qemu-img", "bitmap", "--merge", "s", "-b", source, "-F", "qcow2", theirs, "b0");
        Assert.Equal(InfoWithoutDiskSize(theirs).Replace(theirs, ours, StringComparison.Ordinal), InfoWithoutDiskSize(ours));
        Assert.Equal(await Qsd.BitmapSha256Async(theirs, "b0", _dir), await Qsd.BitmapSha256Async(ours, "b0", _dir));
        Assert.Equal(sourceInfo, InfoWithoutDiskSize(source));
        Assert.Equal(0, Processes.Run("qemu-img", "check", ours).ExitCode);
    }

    // Where the clusters fall may differ from qemu-img's; what the image says may not.
    private static string InfoWithoutDiskSize(string image)
        => string.Join('\n', Processes.Ok("qemu-img", "info", image).Split('\n').Where(l => !l.StartsWith("disk size", StringComparison.Ordinal)));

    private string Image(string name)
    {
        string path = _dir.File(name);
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", path, "64M");
        return path;
    }

    /// <summary>An image whose bitmap b0 was left in use by a qemu-storage-daemon that was killed while it had the image open read-write.</summary>
    private async Task<string> InUseImageAsync()
    {
        string image = Image("inuse.qcow2");
        Processes.Ok("qemu-img", "bitmap", "--add", image, "b0");
        string socket = _dir.File("k.sock");
        await using (await Qsd.StartAsync(socket,
            "--blockdev", $"driver=file,node-name=file0,filename={image}",
            "--blockdev", "driver=qcow2,node-name=fmt0,file=file0",
            "--nbd-server", $"addr.type=unix,addr.path={socket}"))
        {
        }

        Assert.Contains("in-use", Processes.Ok("qemu-img", "info", "-U", image));
        return image;
    }
}
