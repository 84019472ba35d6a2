using System.Globalization;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>The test kit's long-running child: bounded waits that fail with its output, and a dispose that ends it and its children.</summary>
public sealed class BackgroundProcessTests
{
    [Fact]
    public async Task WaitingForAFileFailsWithTheOutputWhenTheProcessExitsFirst()
    {
        using var folder = new TempFolder("bg");
        using var process = BackgroundProcess.Start("sh", ["-c", "echo cannot start >&2; exit 4"]);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => process.WaitForFileAsync(folder.File("never.sock")));
        Assert.Contains("never.sock never appeared: the process exited 4 first", e.Message, StringComparison.Ordinal);
        Assert.Contains("cannot start", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WaitingForAFileThatNeverComesTimesOutWithTheOutputSoFar()
    {
        using var folder = new TempFolder("bg");
        using var process = BackgroundProcess.Start("sh", ["-c", "echo listening; exec sleep 300"]);
        await process.WaitForOutputAsync("listening");
        var e = await Assert.ThrowsAsync<TimeoutException>(() => process.WaitForFileAsync(folder.File("never.sock"), TimeSpan.FromSeconds(1)));
        Assert.Contains("listening", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DisposeKillsTheProcessAndWhatItStarted()
    {
        using var folder = new TempFolder("bg");
        string pidFile = folder.File("child.pid");
        var process = BackgroundProcess.Start("sh", ["-c", $"sleep 300 & echo $! > {pidFile}.tmp; mv {pidFile}.tmp {pidFile}; wait"]);
        await process.WaitForFileAsync(pidFile);
        int parent = process.Id;
        await process.DisposeAsync();
        await ProcessesTests.AssertGoneAsync(parent);
        await ProcessesTests.AssertGoneAsync(int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture));
    }
}
