using Strata.TestKit;

namespace Strata.Cli.Tests;

/// <summary><c>img bench -t none</c> really asks for O_DIRECT, and unaligned requests still work through it.</summary>
public sealed class BenchCommandCacheNoneTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("-t", "none")]
    [InlineData("-n", null)]
    public void DirectBenchOnAFileSystemWithoutODirectIsOneClearLine(string option, string? value)
    {
        // procfs refuses O_DIRECT at open, as tmpfs did before Linux 6.6.
        string[] args = value is null ? ["bench", option, "-f", "raw", "/proc/version"] : ["bench", option, value, "-f", "raw", "/proc/version"];
        var result = StrataCli.Img(args);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("strata img: cache=none: the file system of '/proc/version' does not support O_DIRECT (use cache=writeback)\n", result.Stderr);
    }

    [Theory]
    [InlineData("raw")]
    [InlineData("qcow2")]
    public void UnalignedDirectWritesLandWhereQemuReadsThem(string format)
    {
        string image = _dir.File("a." + format);
        Processes.Run("qemu-img", "create", "-q", "-f", format, image, "1M").AssertSuccess();

        // 1000-byte requests from offset 100: hardly any starts or ends on a sector boundary.
        StrataCli.ImgOk("bench", "-t", "none", "-w", "-c", "500", "-d", "8", "-s", "1000", "-o", "100", "--pattern=90", "-f", format, image);

        if (format == "qcow2")
        {
            Processes.Run("qemu-img", "check", image).AssertSuccess();
        }

        QemuIo.Ok(image, format, "read -P 0 0 100", "read -P 90 100 500000", "read -P 0 500100 548476");
    }
}
