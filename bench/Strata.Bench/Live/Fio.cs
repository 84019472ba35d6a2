using System.Globalization;
using System.Text.Json;

namespace Strata.Bench.Live;

/// <summary>
/// fio as the guest, in its own process: runs to the end or until interrupted (SIGINT, after which
/// fio still writes its logs and its JSON report), and the two things read back from it: the IOPS of
/// the JSON report and the per-request or averaged logs.
/// </summary>
internal static class Fio
{
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

    public static RunningProcess Start(FioWorkload workload, string uri, long size, TimeSpan runtime, params string[] extra) =>
        RunningProcess.Start("fio", [.. workload.Arguments(uri, size, runtime), .. extra]);

    /// <summary>A job of <paramref name="runtime"/>; its IOPS, NaN (with a message) if it failed.</summary>
    public static async Task<double> RunAsync(FioWorkload workload, string uri, long size, TimeSpan runtime, CancellationToken cancellationToken)
    {
        var result = await BenchProcess.RunAsync("fio", workload.Arguments(uri, size, runtime), timeout: runtime + ExitTimeout, cancellationToken: cancellationToken);
        return result.ExitCode == 0 ? Iops(result.Stdout) : Failed(result.Stderr);
    }

    /// <summary>Waits for a job started by <see cref="Start"/> to reach its runtime and end (bounded); its IOPS, NaN if it failed.</summary>
    public static async Task<double> EndAsync(RunningProcess fio, TimeSpan runtime)
    {
        if (!await fio.WaitForExitAsync(runtime + ExitTimeout))
        {
            return await StopAsync(fio);
        }

        var (stdout, stderr) = await fio.OutputAsync();
        return fio.ExitCode == 0 ? Iops(stdout) : Failed(stderr);
    }

    /// <summary>Stops a job started by <see cref="Start"/> (SIGINT, bounded wait); its IOPS, NaN if it failed.</summary>
    public static async Task<double> StopAsync(RunningProcess fio)
    {
        await fio.SignalAsync("INT");
        if (!await fio.WaitForExitAsync(ExitTimeout))
        {
            await fio.DisposeAsync();
            return Failed($"fio did not stop within {ExitTimeout.TotalSeconds:0} s");
        }

        var (stdout, stderr) = await fio.OutputAsync();
        return Iops(stdout) is var iops && !double.IsNaN(iops) ? iops : Failed(stderr);
    }

    /// <summary>
    /// The samples of a log written with <c>--log_unix_epoch=1</c>: "time, value, direction, block
    /// size, offset[, priority]" per line, time in Unix milliseconds (truncated), value in ns for a
    /// latency log or in IOPS for an IOPS log.
    /// </summary>
    public static List<FioSample> ReadLog(string prefix, string kind)
    {
        string folder = Path.GetDirectoryName(prefix)!;
        string path = Directory.GetFiles(folder, $"{Path.GetFileName(prefix)}_{kind}.*.log").Single();
        var samples = new List<FioSample>(1 << 16);
        foreach (string line in File.ReadLines(path))
        {
            var fields = line.Split(',', 3);
            if (fields.Length >= 2)
            {
                samples.Add(new FioSample(
                    long.Parse(fields[0], CultureInfo.InvariantCulture), long.Parse(fields[1], CultureInfo.InvariantCulture)));
            }
        }

        return samples;
    }

    /// <summary>The job's IOPS from fio's JSON report (which an interrupted fio prints after a few lines of text).</summary>
    private static double Iops(string stdout)
    {
        int start = stdout.StartsWith('{') ? 0 : stdout.IndexOf("\n{", StringComparison.Ordinal) is var i and >= 0 ? i + 1 : -1;
        if (start < 0)
        {
            return double.NaN;
        }

        using var report = JsonDocument.Parse(stdout.AsMemory(start));
        var job = report.RootElement.GetProperty("jobs")[0];
        var read = job.GetProperty("read");
        return read.GetProperty("io_bytes").GetInt64() > 0 ? read.GetProperty("iops").GetDouble() : job.GetProperty("write").GetProperty("iops").GetDouble();
    }

    private static double Failed(string message)
    {
        Console.Error.WriteLine($"fio failed: {message.Trim()}");
        return double.NaN;
    }
}
