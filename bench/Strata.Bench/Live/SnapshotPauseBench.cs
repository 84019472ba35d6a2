using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Strata.Bench.Live;

/// <summary>
/// The pause a live snapshot imposes on the guest. fio (its own process) keeps 32 random 4 KiB
/// writes in flight over NBD and logs every request's latency; meanwhile the benchmark takes
/// snapshots 200 ms apart through QMP and records each command's start and end on the same clock
/// (Unix time). Per snapshot: the longest request whose lifetime [completion − latency, completion]
/// overlaps the command's window. fio logs completion times truncated to the millisecond, so the
/// overlap test widens each lifetime by <see cref="FioClockSlackMs"/>: it may count a request that
/// just missed the window, never miss one that overlapped.
/// </summary>
internal static class SnapshotPauseBench
{
    private const double FioClockSlackMs = 2;
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(1.5);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        string disk = work.Disk();
        var runs = await work.EachServerRunAsync("snapshot-pause", (server, folder) => RunOnceAsync(server, disk, folder, options, cancellationToken), cancellationToken);

        var (strata, qsd) = (runs["strata"], runs["qsd"]);
        Summary Worst(List<PauseRun> r) => Summary.Median(r.Select(x => x.Worst));
        Summary Command(List<PauseRun> r) => Summary.Median(r.Select(x => x.Command));
        Summary Outside(List<PauseRun> r) => Summary.Median(r.Select(x => x.Outside));
        Summary First(List<PauseRun> r, Func<PauseRun, double> field) => Summary.Of(r.Select(field));
        string Row(string measure, Summary s, Summary q) =>
            $"| {measure} | {s} | {q} | {Cells.Ratio(q.P50, s.P50)} | {Cells.Ratio(q.Max, s.Max)} |";

        var table = new StringBuilder();
        table.AppendLine("### Snapshot pause");
        table.AppendLine();
        table.AppendLine($"Guest: fio {FioWorkload.RandWrite4K.Label} over NBD on a {options.DiskSize >> 20} MiB raw image (fully written); "
            + $"{options.Snapshots} snapshots {Interval.TotalMilliseconds:0} ms apart; {options.Runs} run(s) per server, alternated. "
            + "The first snapshot of each run (a freshly started server) is shown on its own rows; the others make the first three rows. "
            + "Each cell: p50 / p99 / max within a run, median over the runs, in ms. Ratios qsd/strata: above 1.00× Strata's pause is shorter.");
        table.AppendLine();
        table.AppendLine("| measure (ms) | strata p50 / p99 / max | qsd p50 / p99 / max | qsd/strata p50 | qsd/strata max |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        var strataHeld = strata.Select(r => r.Held).OfType<Summary>().ToList();
        if (strataHeld.Count > 0)
        {
            table.AppendLine($"| time a guest request waited at the drive's gate (Strata's -v log; every snapshot) | {Summary.Median(strataHeld)} | n/a | | |");
        }

        table.AppendLine(Row("longest guest request overlapping a snapshot", Worst(strata), Worst(qsd)));
        table.AppendLine(Row("blockdev-snapshot-sync, QMP round trip", Command(strata), Command(qsd)));
        table.AppendLine(Row("guest request latency outside snapshot windows", Outside(strata), Outside(qsd)));
        table.AppendLine(Row("first snapshot of a fresh server: longest request (over the runs)", First(strata, r => r.FirstWorst), First(qsd, r => r.FirstWorst)));
        table.AppendLine(Row("first snapshot of a fresh server: QMP round trip (over the runs)", First(strata, r => r.FirstCommand), First(qsd, r => r.FirstCommand)));
        double strataIops = BenchStats.Median(strata.Select(r => r.Iops));
        double qsdIops = BenchStats.Median(qsd.Select(r => r.Iops));
        table.AppendLine($"| guest IOPS over the run (strata/qsd) | {Cells.Number(strataIops, "N0")} | {Cells.Number(qsdIops, "N0")} | {Cells.Ratio(strataIops, qsdIops)} | |");
        return table.ToString();
    }

    private static async Task<PauseRun> RunOnceAsync(ServerKind kind, string disk, string folder, LiveOptions options, CancellationToken cancellationToken)
    {
        await using var server = kind.Create(folder);
        await server.StartAsync(new DiskImage(disk, "raw"), cancellationToken);
        string log = Path.Combine(folder, "guest");
        var windows = new List<(double Start, double End)>();
        var commands = new List<double>();
        double iops;
        await using (var fio = Fio.Start(FioWorkload.RandWrite4K, server.NbdUri, options.DiskSize, TimeSpan.FromMinutes(5),
            $"--write_lat_log={log}", "--log_avg_msec=0", "--log_unix_epoch=1"))
        {
            await Task.Delay(Warmup, cancellationToken);
            if (fio.HasExited)
            {
                var (_, stderr) = await fio.OutputAsync();
                throw new InvalidOperationException($"fio ended early: {stderr.Trim()}");
            }

            for (int i = 1; i <= options.Snapshots; i++)
            {
                double start = UnixTime.Milliseconds();
                long t0 = Stopwatch.GetTimestamp();
                await server.SnapshotAsync(Path.Combine(folder, $"snap{i}.qcow2"), cancellationToken);
                commands.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                windows.Add((start, UnixTime.Milliseconds()));
                await Task.Delay(Interval, cancellationToken);
            }

            iops = await Fio.StopAsync(fio);
        }

        var held = HeldTimes(await server.StopAndReadLogAsync(), options.Snapshots);

        // A request completed in [t, t + slack) and started latency earlier.
        var requests = Fio.ReadLog(log, "lat").Select(s => (Start: s.TimeMs - (s.Value / 1e6), End: s.TimeMs + FioClockSlackMs, Ms: s.Value / 1e6)).ToList();
        bool Overlaps((double Start, double End, double Ms) r, (double Start, double End) w) => r.Start < w.End && r.End > w.Start;
        var worst = windows.Select(w => requests.Where(r => Overlaps(r, w)).Select(r => r.Ms).DefaultIfEmpty(double.NaN).Max()).ToList();
        double settled = requests.Count == 0 ? 0 : requests[0].End + 500;
        var outside = requests.Where(r => r.End > settled && !windows.Any(w => Overlaps(r, w))).Select(r => r.Ms);
        return new PauseRun(Summary.Of(worst.Skip(1)), Summary.Of(commands.Skip(1)), Summary.Of(outside), worst[0], commands[0], iops, held);
    }

    /// <summary>
    /// Strata's own measure, from its -v log: for each hold of the guest, the longest time a request
    /// waited at the drive's gate. A snapshot that found no request to hold logs nothing and counts as 0.
    /// Null for a server that does not log it.
    /// </summary>
    private static Summary? HeldTimes(string log, int snapshots)
    {
        const string Marker = "held, the longest for ";
        var holds = log.Split('\n')
            .Select(line => line.IndexOf(Marker, StringComparison.Ordinal) is var at and >= 0
                ? double.Parse(line[(at + Marker.Length)..].Split(' ')[0], CultureInfo.InvariantCulture)
                : (double?)null)
            .OfType<double>()
            .ToList();
        if (holds.Count == 0 && !log.Contains("snapshot of", StringComparison.Ordinal))
        {
            return null;
        }

        holds.AddRange(Enumerable.Repeat(0.0, Math.Max(0, snapshots - holds.Count)));
        return Summary.Of(holds);
    }

    /// <summary>
    /// One run's results: the worst request per snapshot and the command's round trip (from the
    /// second snapshot on), the latency outside snapshots, and the first snapshot's two values.
    /// </summary>
    private sealed record PauseRun(Summary Worst, Summary Command, Summary Outside, double FirstWorst, double FirstCommand, double Iops, Summary? Held);
}
