using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class ResizeCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawGrowsAndShrinksOnlyWithShrink()
    {
        Run.ImgOk("create", "-q", _dir.File("a.raw"), "1M");
        Assert.Equal("Image resized.\n", Run.ImgOk("resize", _dir.File("a.raw"), "+1M").Output);
        Assert.Equal(2L << 20, new FileInfo(_dir.File("a.raw")).Length);
        var refused = Run.Img("resize", "-f", "raw", _dir.File("a.raw"), "-512k");
        Assert.Equal(1, refused.ExitCode);
        Assert.Equal("strata img: Use the --shrink option to perform a shrink operation.\n", refused.Error);
        Run.ImgOk("resize", "--shrink", "-f", "raw", _dir.File("a.raw"), "-512k");
        Assert.Equal(1536L << 10, new FileInfo(_dir.File("a.raw")).Length);
    }

    [Fact]
    public void QcowGrows()
    {
        Run.ImgOk("create", "-q", "-f", "qcow2", _dir.File("a.qcow2"), "1M");
        Run.ImgOk("resize", _dir.File("a.qcow2"), "3G");
        Assert.Contains("virtual size: 3 GiB (3221225472 bytes)", Run.QemuImgOk("info", _dir.File("a.qcow2")).Output);
        Assert.Equal(0, Run.QemuImg("check", _dir.File("a.qcow2")).ExitCode);
    }
}
