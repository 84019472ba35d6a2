using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class CompareCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public CompareCommandTests()
    {
        Run.QemuImgOk("create", "-q", "-f", "raw", _dir.File("a.raw"), "1M");
        Run.QemuIo(_dir.File("a.raw"), "raw", "write -P 1 64k 64k", "write -P 2 512k 4k");
        File.Copy(_dir.File("a.raw"), _dir.File("b.raw"));
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void IdenticalImagesExitZero()
    {
        var result = Run.Img("compare", _dir.File("a.raw"), _dir.File("b.raw"));
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("Images are identical.\n", result.Output);
    }

    [Fact]
    public void AMismatchReportsTheSectorLikeQemuImg()
    {
        Run.QemuIo(_dir.File("b.raw"), "raw", "write -P 3 600003 1");
        var qemu = Run.QemuImg("compare", _dir.File("a.raw"), _dir.File("b.raw"));
        var result = Run.Img("compare", _dir.File("a.raw"), _dir.File("b.raw"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal(qemu.Output, result.Output);
        Assert.Equal(1, Run.Img("compare", "-q", _dir.File("a.raw"), _dir.File("b.raw")).ExitCode);
    }

    [Fact]
    public void SizeMismatchFollowsQemuImgWithAndWithoutStrict()
    {
        Run.QemuImgOk("create", "-q", "-f", "raw", _dir.File("big.raw"), "2M");
        Run.QemuIo(_dir.File("big.raw"), "raw", "write -P 1 64k 64k", "write -P 2 512k 4k");
        foreach (string[] args in new[]
        {
            new[] { "compare", _dir.File("a.raw"), _dir.File("big.raw") },
            ["compare", "-s", _dir.File("a.raw"), _dir.File("big.raw")],
        })
        {
            var qemu = Run.QemuImg(args);
            var result = Run.Img(args);
            Assert.Equal(qemu.ExitCode, result.ExitCode);
            Assert.Equal(qemu.Output, result.Output);
        }

        Run.QemuIo(_dir.File("big.raw"), "raw", "write -P 9 1536k 4k");
        var after = Run.Img("compare", _dir.File("big.raw"), _dir.File("a.raw"));
        Assert.Equal(1, after.ExitCode);
        Assert.Equal(Run.QemuImg("compare", _dir.File("big.raw"), _dir.File("a.raw")).Output, after.Output);
    }

    [Fact]
    public void AnOverlayComparesThroughItsBackingChain()
    {
        Run.ImgOk("create", "-q", "-f", "qcow2", "-b", "a.raw", _dir.File("o.qcow2"));
        Assert.Equal(0, Run.Img("compare", _dir.File("o.qcow2"), _dir.File("b.raw")).ExitCode);
        Run.QemuIo(_dir.File("o.qcow2"), "qcow2", "write -P 7 900k 4k");
        Assert.Equal(1, Run.Img("compare", "-f", "qcow2", "-F", "raw", _dir.File("o.qcow2"), _dir.File("b.raw")).ExitCode);
    }

    [Fact]
    public void AnErrorExitsTwo()
    {
        var result = Run.Img("compare", _dir.File("a.raw"), _dir.File("missing.raw"));
        Assert.Equal(2, result.ExitCode);
        Assert.Equal($"strata img: Could not open '{_dir.File("missing.raw")}': No such file or directory\n", result.Error);
    }
}
