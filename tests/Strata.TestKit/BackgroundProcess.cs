using System.Diagnostics;
using System.Globalization;

namespace Strata.TestKit;

/// <summary>
/// A long-running child (a server, a daemon) started the way <see cref="Processes"/> starts one:
/// <c>LC_ALL=C</c>, output kept whole and readable while it runs. Every wait is bounded and fails
/// with the command line and what the child printed; dispose kills the child and every process below
/// it, by the PID this class started, if it still runs.
/// </summary>
public sealed class BackgroundProcess : IDisposable, IAsyncDisposable
{
    public static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly OutputCapture _stdout;
    private readonly OutputCapture _stderr;
    private bool _disposed;

    private BackgroundProcess(Process process, string commandLine)
    {
        _process = process;
        CommandLine = commandLine;
        _stdout = new OutputCapture(process.StandardOutput);
        _stderr = new OutputCapture(process.StandardError);
        process.StandardInput.Close();
    }

    public string CommandLine { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public string Stdout => _stdout.Text;

    public string Stderr => _stderr.Text;

    public static BackgroundProcess Start(string program, IEnumerable<string> args, ProcessOptions? options = null)
    {
        var start = Processes.StartInfo(program, args, options ?? ProcessOptions.Default);
        string commandLine = Processes.CommandLine(start);
        return new BackgroundProcess(Process.Start(start) ?? throw new InvalidOperationException($"could not start: {commandLine}"), commandLine);
    }

    /// <summary>Waits until <paramref name="path"/> exists; fails with the story if the child exits first or the wait runs out.</summary>
    public Task WaitForFileAsync(string path, TimeSpan? timeout = null) => WaitUntilAsync(() => File.Exists(path), $"{path} never appeared", timeout);

    /// <summary>Waits until the child has printed <paramref name="text"/> on stdout or stderr.</summary>
    public Task WaitForOutputAsync(string text, TimeSpan? timeout = null) =>
        WaitUntilAsync(() => Stdout.Contains(text, StringComparison.Ordinal) || Stderr.Contains(text, StringComparison.Ordinal),
            $"never printed '{text}'", timeout);

    /// <summary>Waits until <paramref name="done"/> holds; fails with <paramref name="what"/> and the story if the child exits first or time runs out.</summary>
    public async Task WaitUntilAsync(Func<bool> done, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(done);
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? DefaultWait;
        while (!done())
        {
            if (_process.HasExited)
            {
                // It may have made the condition true on its way out.
                if (done())
                {
                    return;
                }

                throw new InvalidOperationException($"{what}: the process exited {_process.ExitCode} first\n{await StoryAsync()}");
            }

            if (clock.Elapsed > limit)
            {
                throw new TimeoutException($"{what} within {limit.TotalSeconds:0} s\n{await StoryAsync()}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Waits for the child to exit and its output to end; fails with what it printed if it does not within the timeout.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        try
        {
            await _process.WaitForExitAsync().WaitAsync(limit);
            await Task.WhenAll(_stdout.Completion, _stderr.Completion).WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"pid {_process.Id} did not exit within {limit.TotalSeconds:0} s\n{await StoryAsync()}");
        }

        return _process.ExitCode;
    }

    /// <summary>Sends <paramref name="signal"/> (TERM, INT, HUP …) to the child alone, by its PID.</summary>
    public async Task SignalAsync(string signal) =>
        (await Processes.RunAsync("kill", $"-{signal}", _process.Id.ToString(CultureInfo.InvariantCulture))).AssertSuccess();

    /// <summary>SIGKILL to the child and everything below it: no flush, no clean close (a crash).</summary>
    public Task KillAsync() => Processes.KillTreeAsync(_process);

    /// <summary>The command line and what the child printed so far.</summary>
    public override string ToString() => $"$ {CommandLine}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Kills the child (and its children) if it still runs; a second call does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await KillAsync();
        _process.Dispose();
    }

    private async Task<string> StoryAsync()
    {
        if (_process.HasExited)
        {
            await Task.WhenAny(Task.WhenAll(_stdout.Completion, _stderr.Completion), Task.Delay(TimeSpan.FromSeconds(5)));
        }

        return ToString();
    }
}
