using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class RebaseCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public RebaseCommandTests()
    {
        Run.ImgOk("create", "-q", "-f", "raw", _dir.File("old.raw"), "2M");
        Run.QemuIo(_dir.File("old.raw"), "raw", "write -P 1 0 1M");
        Run.ImgOk("create", "-q", "-f", "qcow2", "-b", "old.raw", _dir.File("ov.qcow2"));
        Run.QemuIo(_dir.File("ov.qcow2"), "qcow2", "write -P 2 1M 64k");
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void UnsafeRebaseRewritesOnlyTheHeader()
    {
        Run.ImgOk("rebase", "-u", "-b", "", _dir.File("ov.qcow2"));
        Assert.DoesNotContain("backing file", Run.QemuImgOk("info", _dir.File("ov.qcow2")).Output);
        Run.ImgOk("rebase", "-u", "-b", "old.raw", _dir.File("ov.qcow2"));
        var info = Run.QemuImgOk("info", _dir.File("ov.qcow2")).Output;
        Assert.Contains("backing file: old.raw", info);
        Assert.Contains("backing file format: raw", info);
    }

    [Fact]
    public void SafeRebaseKeepsWhatTheImageReads()
    {
        Run.QemuImgOk("convert", "-O", "raw", _dir.File("ov.qcow2"), _dir.File("before.raw"));
        Run.ImgOk("create", "-q", "-f", "raw", _dir.File("new.raw"), "2M");
        Run.QemuIo(_dir.File("new.raw"), "raw", "write -P 7 512k 1M");
        Run.ImgOk("rebase", "-b", "new.raw", _dir.File("ov.qcow2"));
        Assert.Contains("backing file: new.raw", Run.QemuImgOk("info", _dir.File("ov.qcow2")).Output);
        Assert.Equal(0, Run.QemuImg("compare", _dir.File("ov.qcow2"), _dir.File("before.raw")).ExitCode);
        Assert.Equal(0, Run.QemuImg("check", _dir.File("ov.qcow2")).ExitCode);
    }
}
