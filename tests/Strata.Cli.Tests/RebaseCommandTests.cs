using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class RebaseCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public RebaseCommandTests()
    {
        StrataCli.ImgOk("create", "-q", "-f", "raw", _dir.File("old.raw"), "2M");
        QemuIo.Ok(_dir.File("old.raw"), "raw", "write -P 1 0 1M");
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-b", "old.raw", _dir.File("ov.qcow2"));
        QemuIo.Ok(_dir.File("ov.qcow2"), "qcow2", "write -P 2 1M 64k");
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void UnsafeRebaseRewritesOnlyTheHeader()
    {
        StrataCli.ImgOk("rebase", "-u", "-b", "", _dir.File("ov.qcow2"));
        Assert.DoesNotContain("backing file", Processes.Run("qemu-img", "info", _dir.File("ov.qcow2")).AssertSuccess().Stdout);
        StrataCli.ImgOk("rebase", "-u", "-b", "old.raw", _dir.File("ov.qcow2"));
        var info = Processes.Run("qemu-img", "info", _dir.File("ov.qcow2")).AssertSuccess().Stdout;
        Assert.Contains("backing file: old.raw", info);
        Assert.Contains("backing file format: raw", info);
    }

    [Fact]
    public void SafeRebaseKeepsWhatTheImageReads()
    {
        Processes.Run("qemu-img", "convert", "-O", "raw", _dir.File("ov.qcow2"), _dir.File("before.raw")).AssertSuccess();
        StrataCli.ImgOk("create", "-q", "-f", "raw", _dir.File("new.raw"), "2M");
        QemuIo.Ok(_dir.File("new.raw"), "raw", "write -P 7 512k 1M");
        StrataCli.ImgOk("rebase", "-b", "new.raw", _dir.File("ov.qcow2"));
        Assert.Contains("backing file: new.raw", Processes.Run("qemu-img", "info", _dir.File("ov.qcow2")).AssertSuccess().Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "compare", _dir.File("ov.qcow2"), _dir.File("before.raw")).ExitCode);
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("ov.qcow2")).ExitCode);
    }
}
