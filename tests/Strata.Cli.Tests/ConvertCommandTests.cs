using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class ConvertCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawToQcowToRawRoundTripIsIdenticalAndSparse()
    {
        int seed = Environment.TickCount;
        var random = new Random(seed);
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("src.raw"), "8M").AssertSuccess();
        var writes = Enumerable.Range(0, 12).Select(_ =>
            $"write -P {random.Next(1, 255)} {random.Next(0, 8 * 1024 - 64) * 1024} {random.Next(1, 64) * 1024}").ToArray();
        QemuIo.Ok(_dir.File("src.raw"), "raw", writes);

        StrataCli.ImgOk("convert", "-O", "qcow2", _dir.File("src.raw"), _dir.File("mid.qcow2"));
        StrataCli.ImgOk("convert", "-f", "qcow2", "-O", "raw", _dir.File("mid.qcow2"), _dir.File("out.raw"));
        Assert.True(Processes.Run("qemu-img", "compare", _dir.File("src.raw"), _dir.File("mid.qcow2")).ExitCode == 0, $"seed {seed}");
        Assert.True(Processes.Run("qemu-img", "compare", _dir.File("src.raw"), _dir.File("out.raw")).ExitCode == 0, $"seed {seed}");
        Assert.True(Processes.Run("qemu-img", "check", _dir.File("mid.qcow2")).ExitCode == 0, $"seed {seed}");

        // At most 12 writes of under 64 KiB each, plus cluster rounding: far below the 8 MiB disk.
        long allocated = Processes.Run("qemu-img", "map", "--output=json", _dir.File("mid.qcow2")).AssertSuccess().Stdout.Split('\n').Count(l => l.Contains("\"data\": true"));
        Assert.True(allocated <= 24, $"seed {seed}: {allocated} data runs");
    }

    [Fact]
    public void AnOverlayIsFlattenedWithItsBacking()
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("base.raw"), "2M").AssertSuccess();
        QemuIo.Ok(_dir.File("base.raw"), "raw", "write -P 1 0 1M");
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-b", "base.raw", _dir.File("top.qcow2"));
        QemuIo.Ok(_dir.File("top.qcow2"), "qcow2", "write -P 2 512k 1M");
        var result = StrataCli.ImgOk("convert", "-p", "-O", "raw", _dir.File("top.qcow2"), _dir.File("flat.raw"));
        Assert.EndsWith("(100.00/100%)\r\n", result.Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "compare", _dir.File("top.qcow2"), _dir.File("flat.raw")).ExitCode);
    }

    [Fact]
    public void AMissingSourceCreatesNoTarget()
    {
        var result = StrataCli.Img("convert", "-O", "qcow2", _dir.File("nope.raw"), _dir.File("out.qcow2"));
        Assert.Equal(1, result.ExitCode);
        Assert.False(File.Exists(_dir.File("out.qcow2")));
    }
}
