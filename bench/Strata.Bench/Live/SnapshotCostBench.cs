using System.Text;

namespace Strata.Bench.Live;

/// <summary>
/// What a snapshot costs the guest while it is active, and that the cost ends with the merge: fio
/// phases of the same length on a served raw image before the snapshot, during it (writes go to the
/// new qcow2 overlay, reads fall through to the base where the overlay has nothing), and after the
/// merge back to the raw base. Ratios are taken within each run (same server, minutes apart), then
/// the median over runs.
/// </summary>
internal static class SnapshotCostBench
{
    private static readonly FioWorkload[] Workloads = [FioWorkload.RandWrite4K, FioWorkload.RandRead4K];
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(1);

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        string disk = work.Disk();
        var results = await work.EachServerRunAsync("snapshot-cost", (server, folder) => RunOnceAsync(server, disk, folder, options, cancellationToken), cancellationToken);

        var table = new StringBuilder();
        table.AppendLine("### Cost of an active snapshot");
        table.AppendLine();
        table.AppendLine($"Guest: fio over NBD on a {options.DiskSize >> 20} MiB raw image (fully written), {options.Phase.TotalSeconds:0.#} s per workload and phase: "
            + $"after an unmeasured {Warmup.TotalSeconds:0} s warm-up per workload, before the snapshot (raw), during it (qcow2 overlay over the raw image), after the merge (raw again). "
            + $"{options.Runs} run(s) per server, alternated; IOPS medians; ratios within each run, then their median. Target: after/before ≥ 0.97.");
        table.AppendLine();
        table.AppendLine("| server | workload | IOPS before | IOPS during | IOPS after | during/before | after/before |");
        table.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var workload in Workloads)
        {
            foreach (var server in work.Servers)
            {
                var runs = results[server.Name];
                double Phase(int phase) => BenchStats.Median(runs.Select(r => r.Iops[(workload, phase)]));
                double Ratio(int phase) => BenchStats.Median(runs.Select(r => r.Iops[(workload, phase)] / r.Iops[(workload, 0)]));
                table.AppendLine($"| {server.Name} | {workload.Label} | {Cells.Number(Phase(0), "N0")} | {Cells.Number(Phase(1), "N0")} | {Cells.Number(Phase(2), "N0")} | "
                    + $"{Cells.Number(Ratio(1))} | {Cells.Number(Ratio(2))} |");
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

        for (int phase = 0; phase < 3; phase++)
        {
            if (phase == 1)
            {
                await server.SnapshotAsync(Path.Combine(folder, "snap.qcow2"), cancellationToken);
            }
            else if (phase == 2)
            {
                merge = await server.MergeAsync(options.MergeTimeout, cancellationToken);
            }

            foreach (var workload in Workloads)
            {
                iops[(workload, phase)] = phase == 2 && !merge.Converged
                    ? double.NaN
                    : await Fio.RunAsync(workload, server.NbdUri, options.DiskSize, options.Phase, cancellationToken);
            }
        }

        return new CostRun(iops, merge);
    }

    /// <summary>One run: IOPS per workload and phase (0 before, 1 during, 2 after), and the merge between 1 and 2.</summary>
    private sealed record CostRun(Dictionary<(FioWorkload, int), double> Iops, MergeResult Merge);
}
