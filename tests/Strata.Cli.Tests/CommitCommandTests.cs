using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class CommitCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void CommitCopiesTheOverlayIntoTheBaseAndEmptiesIt()
    {
        StrataCli.ImgOk("create", "-q", "-f", "raw", _dir.File("base.raw"), "4M");
        QemuIo.Ok(_dir.File("base.raw"), "raw", "write -P 1 0 1M");
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-b", "base.raw", _dir.File("ov.qcow2"));
        QemuIo.Ok(_dir.File("ov.qcow2"), "qcow2", "write -P 2 512k 1M", "write -z 3M 64k", "write -P 3 4095k 1k");
        Processes.Run("qemu-img", "convert", "-O", "raw", _dir.File("ov.qcow2"), _dir.File("expected.raw")).AssertSuccess();

        var result = StrataCli.ImgOk("commit", _dir.File("ov.qcow2"));
        Assert.Equal("Image committed.\n", result.Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "compare", "-f", "raw", "-F", "raw", _dir.File("base.raw"), _dir.File("expected.raw")).ExitCode);
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("ov.qcow2")).ExitCode);
        Assert.DoesNotContain("\"depth\": 0", Processes.Run("qemu-img", "map", "--output=json", _dir.File("ov.qcow2")).AssertSuccess().Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "compare", _dir.File("ov.qcow2"), _dir.File("expected.raw")).ExitCode);
    }

    [Fact]
    public void CommitIntoAQcowBaseThroughAMiddleLayerWithDashB()
    {
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", _dir.File("base.qcow2"), "2M");
        QemuIo.Ok(_dir.File("base.qcow2"), "qcow2", "write -P 1 0 2M");
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-b", "base.qcow2", _dir.File("mid.qcow2"));
        QemuIo.Ok(_dir.File("mid.qcow2"), "qcow2", "write -P 2 0 64k");
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", _dir.File("top.qcow2"));
        QemuIo.Ok(_dir.File("top.qcow2"), "qcow2", "write -P 3 1M 64k");
        Processes.Run("qemu-img", "convert", "-O", "raw", _dir.File("top.qcow2"), _dir.File("expected.raw")).AssertSuccess();

        StrataCli.ImgOk("commit", "-q", "-b", _dir.File("base.qcow2"), _dir.File("top.qcow2"));
        Assert.Equal(0, Processes.Run("qemu-img", "compare", _dir.File("base.qcow2"), _dir.File("expected.raw")).ExitCode);
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("base.qcow2")).ExitCode);
    }

    [Fact]
    public void RandomOverlayWritesAllLandInTheBase()
    {
        int seed = Environment.TickCount;
        var random = new Random(seed);
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", _dir.File("base.qcow2"), "6M");
        QemuIo.Ok(_dir.File("base.qcow2"), "qcow2", "write -P 17 0 6M");
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-b", "base.qcow2", _dir.File("top.qcow2"), "8M");
        var commands = Enumerable.Range(0, 20).Select(_ => random.Next(4) == 0
            ? $"write -z {random.Next(0, 8 * 1024 - 128) * 1024} {random.Next(1, 128) * 1024}"
            : $"write -P {random.Next(1, 255)} {random.Next(0, 8 * 1024 * 1024 - 70000)} {random.Next(1, 70000)}").ToArray();
        QemuIo.Ok(_dir.File("top.qcow2"), "qcow2", commands);
        Processes.Run("qemu-img", "convert", "-O", "raw", _dir.File("top.qcow2"), _dir.File("expected.raw")).AssertSuccess();

        var result = StrataCli.Img("commit", _dir.File("top.qcow2"));
        Assert.True(result.ExitCode == 0, $"seed {seed}: {result}");
        Assert.True(Processes.Run("qemu-img", "compare", _dir.File("base.qcow2"), _dir.File("expected.raw")).ExitCode == 0,
            $"seed {seed}: base differs after commit of {string.Join("; ", commands)}");
        Assert.True(Processes.Run("qemu-img", "check", _dir.File("base.qcow2")).ExitCode == 0, $"seed {seed}");
        Assert.True(Processes.Run("qemu-img", "compare", _dir.File("top.qcow2"), _dir.File("expected.raw")).ExitCode == 0, $"seed {seed}");
    }

    [Fact]
    public void AnImageWithoutBackingCannotBeCommitted()
    {
        StrataCli.ImgOk("create", "-q", _dir.File("a.raw"), "1M");
        var result = StrataCli.Img("commit", _dir.File("a.raw"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("strata img: Image does not have a backing file\n", result.Stderr);
    }
}
