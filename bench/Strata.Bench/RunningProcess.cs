using System.Diagnostics;
using System.Globalization;

namespace Strata.Bench;

/// <summary>
/// A process that runs beside the benchmark (a server, a guest): its output is captured, and it is
/// stopped by a signal and then by force, so that no run leaves one behind.
/// </summary>
internal sealed class RunningProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stdout;
    private readonly Task<string> _stderr;

    private RunningProcess(Process process)
    {
        _process = process;
        _stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        _stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public int Id => _process.Id;

    public static RunningProcess Start(string program, IEnumerable<string> args) =>
        new(Process.Start(BenchProcess.StartInfo(program, args)) ?? throw new InvalidOperationException($"could not start {program}"));

    /// <summary>Waits for the process to end; false if it still runs after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(limit.Token);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Sends a signal by name (INT, TERM) through kill(1).</summary>
    public async Task SignalAsync(string signal)
    {
        if (!_process.HasExited)
        {
            await BenchProcess.RunAsync("kill", ["-s", signal, _process.Id.ToString(CultureInfo.InvariantCulture)], timeout: TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>SIGTERM, then SIGKILL if it has not ended within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        await SignalAsync("TERM");
        if (!await WaitForExitAsync(grace))
        {
            await DisposeAsync();
        }
    }

    /// <summary>Everything the process wrote, once it has ended.</summary>
    public async Task<(string Stdout, string Stderr)> OutputAsync() => (await _stdout, await _stderr);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None);
        }

        _process.Dispose();
    }
}
