using System.Text;

namespace Strata.Bench.Live;

/// <summary>
/// What a snapshot costs the guest while it is active, and that the cost ends with the merge: fio
/// phases of the same length on a served raw image before the snapshot, during it (writes go to the
/// new qcow2 overlay, reads fall through to the base where the overlay has nothing), and after the
/// merge back to the raw base. A second phase before the snapshot, with nothing changed, measures
/// the noise the other ratios must be read against. Ratios are taken within each run (same server,
/// seconds apart), then the median over runs.
/// </summary>
internal static class SnapshotCostBench
{
    private static readonly FioWorkload[] Workloads = [FioWorkload.RandWrite4K, FioWorkload.RandRead4K];
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(1);

    // The phases of one run, in order; ratios are to Before.
    private const int Before = 0;
    private const int Control = 1;
    private const int During = 2;
    private const int After = 3;

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        string disk = work.Disk();
        var results = await work.EachServerRunAsync("snapshot-cost", (server, folder) => RunOnceAsync(server, disk, folder, options, cancellationToken), cancellationToken);

        var table = new StringBuilder();
        table.AppendLine("### Cost of an active snapshot");
        table.AppendLine();
        table.AppendLine($"Guest: fio over NBD on a {options.DiskSize >> 20} MiB raw image (fully written), {options.Phase.TotalSeconds:0.#} s per workload and phase: "
            + $"after an unmeasured {Warmup.TotalSeconds:0} s warm-up per workload, before the snapshot (raw), the same again with nothing changed (the control: its ratio is the noise), during the snapshot (qcow2 overlay over the raw image), after the merge (raw again). "
            + $"{options.Runs} run(s) per server, alternated; IOPS medians; ratios within each run, then their median. Target: after/before ≥ 0.97.");
        table.AppendLine();
        table.AppendLine("| server | workload | IOPS before | IOPS before again | IOPS during | IOPS after | control: again/before | during/before | after/before |");
        table.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var workload in Workloads)
        {
            foreach (var server in work.Servers)
            {
                var runs = results[server.Name];
                double Phase(int phase) => BenchStats.Median(runs.Select(r => r.Iops[(workload, phase)]));
                double Ratio(int phase) => BenchStats.Median(runs.Select(r => r.Iops[(workload, phase)] / r.Iops[(workload, Before)]));
                table.AppendLine($"| {server.Name} | {workload.Label} | {Cells.Number(Phase(Before), "N0")} | {Cells.Number(Phase(Control), "N0")} | "
                    + $"{Cells.Number(Phase(During), "N0")} | {Cells.Number(Phase(After), "N0")} | {Cells.Number(Ratio(Control))} | {Cells.Number(Ratio(During))} | {Cells.Number(Ratio(After))} |");
            }
        }

        var merges = work.Servers.Select(s => $"{s.Name} {Cells.Number(BenchStats.Median(results[s.Name].Select(r => r.Merge.Completed?.TotalSeconds ?? double.NaN)))} s"
            + (results[s.Name].Any(r => !r.Merge.Converged) ? $" ({results[s.Name].First(r => !r.Merge.Converged).Merge.Failure})" : ""));
        table.AppendLine();
        table.AppendLine($"Merge between the phases (no guest load; median): {string.Join(", ", merges)}.");
        return table.ToString();
    }

    private static async Task<CostRun> RunOnceAsync(ServerKind kind, string disk, string folder, LiveOptions options, CancellationToken cancellationToken)
    {
        await using var server = kind.Create(folder);
        await server.StartAsync(new DiskImage(disk, "raw"), cancellationToken);
        var iops = new Dictionary<(FioWorkload, int), double>();
        var merge = new MergeResult(null, null, "not run");

        // Not measured: a fresh server's first requests (a .NET server compiles its I/O path then).
        foreach (var workload in Workloads)
        {
            await Fio.RunAsync(workload, server.NbdUri, options.DiskSize, Warmup, cancellationToken);
        }

        for (int phase = Before; phase <= After; phase++)
        {
            if (phase == During)
            {
                await server.SnapshotAsync(Path.Combine(folder, "snap.qcow2"), cancellationToken);
            }
            else if (phase == After)
            {
                merge = await server.MergeAsync(options.MergeTimeout, cancellationToken);
            }

            foreach (var workload in Workloads)
            {
                iops[(workload, phase)] = phase == After && !merge.Converged
                    ? double.NaN
                    : await Fio.RunAsync(workload, server.NbdUri, options.DiskSize, options.Phase, cancellationToken);
            }
        }

        return new CostRun(iops, merge);
    }

    /// <summary>One run: IOPS per workload and phase, and the merge between the during and after phases.</summary>
    private sealed record CostRun(Dictionary<(FioWorkload, int), double> Iops, MergeResult Merge);
}
