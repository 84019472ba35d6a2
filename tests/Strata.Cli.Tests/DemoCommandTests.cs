using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class DemoCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void TheOfflineDemoPassesEveryStepAndKeepsItsImagesInDir()
    {
        var result = StrataCli.Run("demo", "--offline", "--dir", _dir.Path);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("all steps passed", result.Stdout);
        Assert.DoesNotContain("FAILED", result.Stdout);
        Assert.True(File.Exists(_dir.File("foo.img")));
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("tmp_disk.img")).ExitCode);
    }

    [Fact]
    public void TheRootCommandListsImgAndDemo()
    {
        var result = StrataCli.Run("--help");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("img", result.Stdout);
        Assert.Contains("demo", result.Stdout);
    }
}
