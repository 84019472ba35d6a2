using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class BenchCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ReadBenchPrintsQemuImgsLines()
    {
        StrataCli.ImgOk("create", "-q", _dir.File("a.raw"), "4M");
        var result = StrataCli.ImgOk("bench", "-c", "2000", "-d", "8", "-f", "raw", _dir.File("a.raw"));
        var lines = result.Stdout.TrimEnd('\n').Split('\n');
        Assert.Equal("Sending 2000 read requests, 4096 bytes each, 8 in parallel (starting at offset 0, step size 4096)", lines[0]);
        Assert.Matches(@"^Run completed in \d+\.\d{3} seconds\.$", lines[1]);
    }

    [Fact]
    public void WriteBenchWritesThePatternAcrossTheImageAndWraps()
    {
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", _dir.File("a.qcow2"), "1M");

        // 300 requests of 8 KiB over a 1 MiB image wrap around twice.
        var result = StrataCli.ImgOk("bench", "-w", "-c", "300", "-d", "4", "-s", "8k", "--pattern=165", "--flush-interval=50", "-f", "qcow2", _dir.File("a.qcow2"));
        Assert.Contains("Sending flush every 50 requests", result.Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("a.qcow2")).ExitCode);
        QemuIo.Ok(_dir.File("a.qcow2"), "qcow2", "read -P 165 0 1M");
    }

    [Fact]
    public void FlushIntervalBelowDepthIsRefusedLikeQemuImg()
    {
        StrataCli.ImgOk("create", "-q", _dir.File("a.raw"), "1M");
        var result = StrataCli.Img("bench", "-w", "-d", "8", "--flush-interval=4", "-f", "raw", _dir.File("a.raw"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("strata img: Flush interval can't be smaller than depth\n", result.Stderr);
        StrataCli.ImgOk("bench", "-q", "-w", "-c", "100", "-d", "8", "--flush-interval=4", "--no-drain", "-f", "raw", _dir.File("a.raw"));
    }
}
