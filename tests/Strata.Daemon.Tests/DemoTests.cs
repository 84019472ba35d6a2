using Strata.Cli;

namespace Strata.Daemon.Tests;

public sealed class DemoTests
{
    [Fact]
    public void DemoPassesEveryCheckOnASmallDisk()
    {
        var output = new StringWriter();
        var error = new StringWriter();

        int exit = Program.Run(["demo", "--size-mib", "16", "--seed", "7"], output, error);

        Assert.True(exit == 0, $"exit {exit}\n{output}\n{error}");
        Assert.Contains("demo: OK", output.ToString());
        Assert.DoesNotContain("FAILED", output.ToString());
    }
}
