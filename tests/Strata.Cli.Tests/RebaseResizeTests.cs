namespace Strata.Cli.Tests;

public sealed class RebaseCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public RebaseCommandTests()
    {
        Run.ImgOk("create", "-q", "-f", "raw", _dir["old.raw"], "2M");
        Run.QemuIo(_dir["old.raw"], "raw", "write -P 1 0 1M");
        Run.ImgOk("create", "-q", "-f", "qcow2", "-b", "old.raw", _dir["ov.qcow2"]);
        Run.QemuIo(_dir["ov.qcow2"], "qcow2", "write -P 2 1M 64k");
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void UnsafeRebaseRewritesOnlyTheHeader()
    {
        Run.ImgOk("rebase", "-u", "-b", "", _dir["ov.qcow2"]);
        Assert.DoesNotContain("backing file", Run.QemuImgOk("info", _dir["ov.qcow2"]).Output);
        Run.ImgOk("rebase", "-u", "-b", "old.raw", _dir["ov.qcow2"]);
        var info = Run.QemuImgOk("info", _dir["ov.qcow2"]).Output;
        Assert.Contains("backing file: old.raw", info);
        Assert.Contains("backing file format: raw", info);
    }

    [Fact]
    public void SafeRebaseKeepsWhatTheImageReads()
    {
        Run.QemuImgOk("convert", "-O", "raw", _dir["ov.qcow2"], _dir["before.raw"]);
        Run.ImgOk("create", "-q", "-f", "raw", _dir["new.raw"], "2M");
        Run.QemuIo(_dir["new.raw"], "raw", "write -P 7 512k 1M");
        Run.ImgOk("rebase", "-b", "new.raw", _dir["ov.qcow2"]);
        Assert.Contains("backing file: new.raw", Run.QemuImgOk("info", _dir["ov.qcow2"]).Output);
        Assert.Equal(0, Run.QemuImg("compare", _dir["ov.qcow2"], _dir["before.raw"]).ExitCode);
        Assert.Equal(0, Run.QemuImg("check", _dir["ov.qcow2"]).ExitCode);
    }
}

public sealed class ResizeCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawGrowsAndShrinksOnlyWithShrink()
    {
        Run.ImgOk("create", "-q", _dir["a.raw"], "1M");
        Assert.Equal("Image resized.\n", Run.ImgOk("resize", _dir["a.raw"], "+1M").Output);
        Assert.Equal(2L << 20, new FileInfo(_dir["a.raw"]).Length);
        var refused = Run.Img("resize", "-f", "raw", _dir["a.raw"], "-512k");
        Assert.Equal(1, refused.ExitCode);
        Assert.Equal("strata img: Use the --shrink option to perform a shrink operation.\n", refused.Error);
        Run.ImgOk("resize", "--shrink", "-f", "raw", _dir["a.raw"], "-512k");
        Assert.Equal(1536L << 10, new FileInfo(_dir["a.raw"]).Length);
    }

    [Fact]
    public void QcowGrows()
    {
        Run.ImgOk("create", "-q", "-f", "qcow2", _dir["a.qcow2"], "1M");
        Run.ImgOk("resize", _dir["a.qcow2"], "3G");
        Assert.Contains("virtual size: 3 GiB (3221225472 bytes)", Run.QemuImgOk("info", _dir["a.qcow2"]).Output);
        Assert.Equal(0, Run.QemuImg("check", _dir["a.qcow2"]).ExitCode);
    }
}
