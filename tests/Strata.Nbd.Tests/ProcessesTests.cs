using System.Globalization;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>The test kit's one-shot runner: what a child gets, what a test gets back, and how a hung child ends.</summary>
public sealed class ProcessesTests
{
    [Fact]
    public async Task ATimeoutKillsTheChildAndWhatItStartedAndFailsWithTheCommandLineAndOutput()
    {
        using var folder = new TempFolder("run");
        string pidFile = folder.File("grandchild.pid");
        var options = new ProcessOptions { Timeout = TimeSpan.FromSeconds(2) };
        var e = await Assert.ThrowsAsync<TimeoutException>(() =>
            Processes.RunAsync("sh", ["-c", $"echo started; echo oops >&2; sleep 300 & echo $! > {pidFile}; wait"], options));
        Assert.Contains("$ sh -c ", e.Message, StringComparison.Ordinal);
        Assert.Contains("started", e.Message, StringComparison.Ordinal);
        Assert.Contains("oops", e.Message, StringComparison.Ordinal);
        await AssertGoneAsync(int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task CancellingTheRunKillsTheChild()
    {
        using var folder = new TempFolder("run");
        string pidFile = folder.File("child.pid");
        using var cancel = new CancellationTokenSource();
        var run = Processes.RunAsync("sh", ["-c", $"echo $$ > {pidFile}; exec sleep 300"], ProcessOptions.Default, cancel.Token);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!File.Exists(pidFile) || !File.ReadAllText(pidFile).EndsWith('\n'))
        {
            // The message awaits the run: evaluated on every pass, it would wait for the child to end.
            if (run.IsCompleted)
            {
                Assert.Fail($"the child ended early: {await run}");
            }

            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "the child wrote no pid file within 30 s");
            await Task.Delay(20);
        }

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        await AssertGoneAsync(int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task AChildThatLeavesAProcessHoldingItsOutputFailsInsteadOfHanging()
    {
        using var folder = new TempFolder("run");
        string pidFile = folder.File("left.pid");
        try
        {
            var e = await Assert.ThrowsAsync<TimeoutException>(() =>
                Processes.RunAsync("sh", ["-c", $"sleep 300 & echo $! > {pidFile}"], new ProcessOptions { Timeout = TimeSpan.FromSeconds(1) }));
            Assert.Contains("exited 0, but a process it left behind still holds its output open", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            // The one process this test started that no runner can reach: its parent is gone.
            Processes.Run("kill", "-KILL", File.ReadAllText(pidFile).Trim());
        }
    }

    [Fact]
    public void TheChildRunsWithLcAllCAndTheEnvironmentGiven()
    {
        var options = new ProcessOptions { Environment = new Dictionary<string, string?> { ["STRATA_PROBE"] = "set", ["HOME"] = null } };
        var result = Processes.Run("sh", ["-c", "echo \"$LC_ALL $STRATA_PROBE ${HOME-unset}\""], options);
        Assert.Equal("C set unset\n", result.Stdout);
    }

    [Fact]
    public void StdinIsWrittenThenClosedAndWithoutItClosedAtOnce()
    {
        Assert.Equal("abc\ndef", Processes.Run("cat", [], new ProcessOptions { Stdin = "abc\ndef" }).Stdout);
        Assert.Equal("", Processes.Run("cat", [], new ProcessOptions { Timeout = TimeSpan.FromSeconds(30) }).Stdout);
    }

    [Fact]
    public void TheChildRunsInTheWorkingFolderGiven()
    {
        using var folder = new TempFolder("run");
        Assert.Equal(folder.Path + "\n", Processes.Run("pwd", [], ProcessOptions.In(folder.Path)).Stdout);
    }

    [Fact]
    public void AssertSuccessFailsWithTheCommandLineExitCodeAndBothOutputs()
    {
        var result = Processes.Run("sh", "-c", "printf 'out\\n'; printf 'err\\n' >&2; exit 3");
        Assert.Equal(3, result.ExitCode);
        Assert.Equal(("out\n", "err\n"), (result.Stdout, result.Stderr));
        var e = Assert.Throws<InvalidOperationException>(() => result.AssertSuccess());
        Assert.Contains("$ sh -c 'printf", e.Message, StringComparison.Ordinal);
        Assert.Contains("exit 3\nstdout:\nout\n\nstderr:\nerr\n", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Waits (bounded) until <paramref name="pid"/> is gone or a zombie; fails if it still runs.</summary>
    internal static async Task AssertGoneAsync(int pid)
    {
        for (int i = 0; i < 100 && Running(pid); i++)
        {
            await Task.Delay(50);
        }

        Assert.False(Running(pid), $"pid {pid} still runs");
    }

    private static bool Running(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }
}
