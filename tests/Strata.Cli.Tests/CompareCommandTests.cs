using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class CompareCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public CompareCommandTests()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("a.raw"), "1M").AssertSuccess();
        QemuIo.Ok(_dir.File("a.raw"), "raw", "write -P 1 64k 64k", "write -P 2 512k 4k");
        File.Copy(_dir.File("a.raw"), _dir.File("b.raw"));
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void IdenticalImagesExitZero()
    {
        var result = StrataCli.Img("compare", _dir.File("a.raw"), _dir.File("b.raw"));
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("Images are identical.\n", result.Stdout);
    }

    [Fact]
    public void AMismatchReportsTheSectorLikeQemuImg()
    {
        QemuIo.Ok(_dir.File("b.raw"), "raw", "write -P 3 600003 1");
        var qemu = Processes.Run("qemu-img", "compare", _dir.File("a.raw"), _dir.File("b.raw"));
        var result = StrataCli.Img("compare", _dir.File("a.raw"), _dir.File("b.raw"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal(qemu.Stdout, result.Stdout);
        Assert.Equal(1, StrataCli.Img("compare", "-q", _dir.File("a.raw"), _dir.File("b.raw")).ExitCode);
    }

    [Fact]
    public void SizeMismatchFollowsQemuImgWithAndWithoutStrict()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("big.raw"), "2M").AssertSuccess();
        QemuIo.Ok(_dir.File("big.raw"), "raw", "write -P 1 64k 64k", "write -P 2 512k 4k");
        foreach (string[] args in new[]
        {
            new[] { "compare", _dir.File("a.raw"), _dir.File("big.raw") },
            ["compare", "-s", _dir.File("a.raw"), _dir.File("big.raw")],
        })
        {
            var qemu = Processes.Run("qemu-img", args);
            var result = StrataCli.Img(args);
            Assert.Equal(qemu.ExitCode, result.ExitCode);
            Assert.Equal(qemu.Stdout, result.Stdout);
        }

        QemuIo.Ok(_dir.File("big.raw"), "raw", "write -P 9 1536k 4k");
        var after = StrataCli.Img("compare", _dir.File("big.raw"), _dir.File("a.raw"));
        Assert.Equal(1, after.ExitCode);
        Assert.Equal(Processes.Run("qemu-img", "compare", _dir.File("big.raw"), _dir.File("a.raw")).Stdout, after.Stdout);
    }

    [Fact]
    public void AnOverlayComparesThroughItsBackingChain()
    {
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-b", "a.raw", _dir.File("o.qcow2"));
        Assert.Equal(0, StrataCli.Img("compare", _dir.File("o.qcow2"), _dir.File("b.raw")).ExitCode);
        QemuIo.Ok(_dir.File("o.qcow2"), "qcow2", "write -P 7 900k 4k");
        Assert.Equal(1, StrataCli.Img("compare", "-f", "qcow2", "-F", "raw", _dir.File("o.qcow2"), _dir.File("b.raw")).ExitCode);
    }

    [Fact]
    public void AnErrorExitsTwo()
    {
        var result = StrataCli.Img("compare", _dir.File("a.raw"), _dir.File("missing.raw"));
        Assert.Equal(2, result.ExitCode);
        Assert.Equal($"strata img: Could not open '{_dir.File("missing.raw")}': No such file or directory\n", result.Stderr);
    }
}
