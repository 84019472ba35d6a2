using System.Diagnostics;

namespace Strata.Bench;

/// <summary>Runs one benchmark process to completion and captures its output.</summary>
internal static class BenchProcess
{
    public static async Task<(int ExitCode, string Stdout, string Stderr, TimeSpan Wall)> RunAsync(string program, IEnumerable<string> args)
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
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            return (-1, await stdout, "timed out after 5 minutes", clock.Elapsed);
        }

        return (process.ExitCode, await stdout, await stderr, clock.Elapsed);
    }
}
