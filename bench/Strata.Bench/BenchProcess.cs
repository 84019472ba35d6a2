using System.Diagnostics;

namespace Strata.Bench;

/// <summary>Runs one benchmark process to completion and captures its output.</summary>
internal static class BenchProcess
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Runs <paramref name="program"/> to its end (killed after <paramref name="timeout"/>, default 5
    /// minutes), feeding it <paramref name="stdin"/> when given.
    /// </summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr, TimeSpan Wall)> RunAsync(
        string program, IEnumerable<string> args, string? stdin = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var start = StartInfo(program, args);
        start.RedirectStandardInput = stdin is not null;
        var limit = timeout ?? DefaultTimeout;
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(limit);
        try
        {
            if (stdin is not null)
            {
                await process.StandardInput.WriteAsync(stdin.AsMemory(), stop.Token);
                process.StandardInput.Close();
            }

            await process.WaitForExitAsync(stop.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            return (-1, await stdout, $"timed out after {limit.TotalSeconds:0} s", clock.Elapsed);
        }

        return (process.ExitCode, await stdout, await stderr, clock.Elapsed);
    }

    /// <summary>Output redirected, the C locale (so numbers print with a dot), no shell.</summary>
    public static ProcessStartInfo StartInfo(string program, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["LC_ALL"] = "C";
        return start;
    }
}
