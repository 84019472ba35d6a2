using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class ResizeCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawGrowsAndShrinksOnlyWithShrink()
    {
        StrataCli.ImgOk("create", "-q", _dir.File("a.raw"), "1M");
        Assert.Equal("Image resized.\n", StrataCli.ImgOk("resize", _dir.File("a.raw"), "+1M").Stdout);
        Assert.Equal(2L << 20, new FileInfo(_dir.File("a.raw")).Length);
        var refused = StrataCli.Img("resize", "-f", "raw", _dir.File("a.raw"), "-512k");
        Assert.Equal(1, refused.ExitCode);
        Assert.Equal("strata img: Use the --shrink option to perform a shrink operation.\n", refused.Stderr);
        StrataCli.ImgOk("resize", "--shrink", "-f", "raw", _dir.File("a.raw"), "-512k");
        Assert.Equal(1536L << 10, new FileInfo(_dir.File("a.raw")).Length);
    }

    [Fact]
    public void QcowGrows()
    {
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", _dir.File("a.qcow2"), "1M");
        StrataCli.ImgOk("resize", _dir.File("a.qcow2"), "3G");
        Assert.Contains("virtual size: 3 GiB (3221225472 bytes)", Processes.Run("qemu-img", "info", _dir.File("a.qcow2")).AssertSuccess().Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("a.qcow2")).ExitCode);
    }
}
