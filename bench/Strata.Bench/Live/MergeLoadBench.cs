using System.Text;

namespace Strata.Bench.Live;

/// <summary>
/// A live merge while the guest writes at full speed: fio (its own process) writes randomly over the
/// whole disk through NBD; after a warm-up, block-commit, job-complete as soon as the job is ready,
/// and the time to BLOCK_JOB_COMPLETED. A merge that has not completed within the time allowed is
/// reported as not converging and cancelled, and that server is not run again for that workload.
/// fio's IOPS log (100 ms averages) gives the guest's rate before and during the merge.
/// </summary>
internal static class MergeLoadBench
{
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(2);
    private static readonly FioWorkload[] Workloads = [FioWorkload.RandWrite4K, FioWorkload.RandWrite64K];

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        var template = await work.TemplateAsync(cancellationToken);
        var cases = Workloads.SelectMany(w => work.Servers.Select(s => (Workload: w, Server: s))).ToList();
        var results = cases.ToDictionary(c => c, _ => new List<LoadRun>());
        await work.EachRunAsync("merge-load", cases, c => $"{c.Server.Name}, {c.Workload.Label}", async (c, folder) =>
        {
            var previous = results[c];
            if (previous.Any(r => !r.Merge.Converged))
            {
                Console.Error.WriteLine("merge-load: skipped, an earlier run did not converge");
                return;
            }

            var run = await RunOnceAsync(c.Server, c.Workload, await template.CopyToAsync(folder, cancellationToken), folder, options, cancellationToken);
            if (run.Merge.Failure is not null)
            {
                Console.Error.WriteLine($"merge-load: {c.Server.Name}: {run.Merge.Failure}");
            }

            previous.Add(run);
        }, cancellationToken);

        var table = new StringBuilder();
        table.AppendLine("### Merge under guest load");
        table.AppendLine();
        table.AppendLine($"Merged: {template.Description}, while fio writes over the whole disk through NBD (warm-up {Warmup.TotalSeconds:0} s before block-commit); "
            + $"job-complete sent at BLOCK_JOB_READY; a merge not completed within {options.MergeTimeout.TotalSeconds:0} s is cancelled and counted as not converged "
            + $"(later runs of that row skipped). {options.Runs} run(s) per row, servers alternated; medians ± half the range. "
            + "Guest IOPS: fio's 100 ms averages over the 1.5 s before block-commit and over the merge.");
        table.AppendLine();
        table.AppendLine("| guest load | server | to READY (s) | to COMPLETED (s) | converged | guest IOPS before | guest IOPS during merge | during/before |");
        table.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (workload, server) in cases)
        {
            var runs = results[(workload, server)];
            var converged = runs.Where(r => r.Merge.Converged).ToList();
            var ready = runs.Where(r => r.Merge.Ready is not null).Select(r => r.Merge.Ready!.Value.TotalSeconds).ToList();
            var completed = converged.Select(r => r.Merge.Completed!.Value.TotalSeconds).ToList();
            string convergence = converged.Count == runs.Count ? $"{runs.Count}/{runs.Count}"
                : $"{converged.Count}/{runs.Count}: {runs.First(r => !r.Merge.Converged).Merge.Failure}";
            table.AppendLine($"| {workload.Label} | {server.Name} | {Cells.WithSpread(ready)} | {Cells.WithSpread(completed)} | {convergence} | "
                + $"{Cells.Number(BenchStats.Median(runs.Select(r => r.Before)), "N0")} | {Cells.Number(BenchStats.Median(runs.Select(r => r.During)), "N0")} | "
                + $"{Cells.Number(BenchStats.Median(runs.Select(r => r.During / r.Before)))} |");
        }

        table.AppendLine();
        table.AppendLine("| guest load | qsd time to COMPLETED / strata's (above 1.00× Strata merges faster) |");
        table.AppendLine("| --- | ---: |");
        foreach (var workload in Workloads)
        {
            double Completed(string server) => BenchStats.Median(results[cases.Single(c => c.Workload == workload && c.Server.Name == server)]
                .Select(r => r.Merge.Completed?.TotalSeconds ?? double.NaN));
            table.AppendLine($"| {workload.Label} | {Cells.Ratio(Completed("qsd"), Completed("strata"))} |");
        }

        return table.ToString();
    }

    private static async Task<LoadRun> RunOnceAsync(ServerKind kind, FioWorkload workload, DiskImage disk, string folder, LiveOptions options, CancellationToken cancellationToken)
    {
        await using var server = kind.Create(folder);
        await server.StartAsync(disk, cancellationToken);
        string log = Path.Combine(folder, "guest");
        double start;
        double end;
        MergeResult merge;
        await using (var fio = Fio.Start(workload, server.NbdUri, options.MergeBaseSize, options.MergeTimeout + TimeSpan.FromMinutes(2),
            $"--write_iops_log={log}", "--log_avg_msec=100", "--log_unix_epoch=1"))
        {
            await Task.Delay(Warmup, cancellationToken);
            start = UnixTime.Milliseconds();
            merge = await server.MergeAsync(options.MergeTimeout, cancellationToken);
            end = UnixTime.Milliseconds();
            await Fio.StopAsync(fio);
        }

        var samples = Fio.ReadLog(log, "iops");
        double Mean(double from, double to) => samples.Where(s => s.TimeMs > from && s.TimeMs <= to).Select(s => (double)s.Value).DefaultIfEmpty(double.NaN).Average();
        return new LoadRun(merge, Mean(start - 1500, start), Mean(start, end));
    }

    /// <summary>One run: the merge, and the guest's IOPS before and during it.</summary>
    private sealed record LoadRun(MergeResult Merge, double Before, double During);
}
