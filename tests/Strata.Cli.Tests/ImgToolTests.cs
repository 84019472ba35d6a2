using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class ImgToolTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string[]> BadCommandLines() => new()
    {
        new[] { "frobnicate" },
        new[] { "info" },
        new[] { "info", "--bogus", "x" },
        new[] { "create", "-z", "x", "1M" },
        new[] { "create", "-f", "vmdk", "x", "1M" },
        new[] { "map", "/nonexistent/x" },
        new[] { "convert", "-O", "qcow2", "/nonexistent/x", "/nonexistent/y" },
        new[] { "commit", "/nonexistent/x" },
        new[] { "bench", "-c", "abc", "x" },
        new[] { "resize", "x" },
        new[] { "rebase", "x" },
        new[] { "check", "/nonexistent/x" },
    };

    [Theory]
    [MemberData(nameof(BadCommandLines))]
    public void ErrorsAreOneLineWithoutAStackTrace(string[] args)
    {
        var result = StrataCli.Img(args);
        Assert.NotEqual(0, result.ExitCode);
        Assert.StartsWith("strata img: ", result.Stderr);
        Assert.Single(result.Stderr.TrimEnd('\n').Split('\n'));
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    [Fact]
    public void ImageFilesThatAreNotImagesAreRefusedCleanly()
    {
        // A qcow2 magic followed by garbage: the driver must refuse it with a message, not crash.
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        bytes[0] = 0x51;
        bytes[1] = 0x46;
        bytes[2] = 0x49;
        bytes[3] = 0xfb;
        File.WriteAllBytes(_dir.File("bad.qcow2"), bytes);
        foreach (string command in new[] { "info", "map", "check" })
        {
            var result = StrataCli.Img(command, _dir.File("bad.qcow2"));
            Assert.NotEqual(0, result.ExitCode);
            Assert.Single(result.Stderr.TrimEnd('\n').Split('\n'));
            Assert.DoesNotContain("   at ", result.Stderr);
        }
    }

    [Fact]
    public void HelpListsEveryCommandAndEachCommandHasAManual()
    {
        var help = StrataCli.ImgOk("--help");
        foreach (string command in new[] { "create", "info", "check", "compare", "map", "convert", "commit", "rebase", "resize", "bench" })
        {
            Assert.Contains(command + " ", help.Stdout);
            var manual = StrataCli.ImgOk(command, "--help").Stdout;
            Assert.Contains("SYNOPSIS", manual);
            Assert.Contains("OPTIONS", manual);
            Assert.Contains("EXIT STATUS", manual);
        }
    }
}
