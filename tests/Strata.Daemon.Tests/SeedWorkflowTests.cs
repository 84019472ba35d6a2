using Strata.TestKit;

namespace Strata.Daemon.Tests;

public sealed class SeedWorkflowTests
{
    [Fact]
    public async Task TheSeedWorkflowScriptRunsToTheEndWithEveryCheckPassing()
    {
        using var folder = new TempFolder();
        var result = await RunExampleAsync(folder, "seed-workflow.sh");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("seed workflow: OK", result.Stdout);
        Assert.False(File.Exists(folder.File("work/tmp_disk.img")));
    }

    [Fact]
    public async Task TheDirtyTrackingScriptFindsExactlyTheWritesInEachBitmap()
    {
        using var folder = new TempFolder();
        var result = await RunExampleAsync(folder, "dirty-tracking.sh");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("dirty tracking: OK", result.Stdout);
    }

    /// <summary>Runs examples/<paramref name="name"/> in a folder of <paramref name="folder"/>, with this build of strata.</summary>
    private static async Task<ProcessResult> RunExampleAsync(TempFolder folder, string name)
    {
        string script = Path.Combine(Repository.Root, "examples", name);
        string wrapper = folder.File("strata");
        await File.WriteAllTextAsync(wrapper, $"#!/bin/sh\nexec '{Processes.DotnetHost()}' '{Path.Combine(AppContext.BaseDirectory, "strata.dll")}' \"$@\"\n");
        Processes.Run("chmod", "+x", wrapper).AssertSuccess();
        return await Processes.RunAsync("env", [$"STRATA={wrapper}", "bash", script, folder.File("work")], new ProcessOptions { Timeout = TimeSpan.FromMinutes(5) });
    }
}
