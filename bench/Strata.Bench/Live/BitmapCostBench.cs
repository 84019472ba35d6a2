using System.Text;
using System.Text.Json.Nodes;

namespace Strata.Bench.Live;

/// <summary>
/// What tracking dirty blocks costs the guest: fio 4 KiB random writes at QD32 and QD1 over NBD on a
/// served raw image, with 0, 1 and 4 bitmaps recording (64 KiB and 4 KiB granularity), added and
/// removed over QMP with QEMU's block-dirty-bitmap-add and -remove, on Strata and on
/// qemu-storage-daemon. Strata's crash-safe dirty_bitmap files are extra rows (QEMU has no
/// counterpart: its in-memory bitmaps are lost in a crash). A last phase without bitmaps is the
/// control: its ratio to the first is the noise the other rows must be read against.
/// </summary>
internal static class BitmapCostBench
{
    private static readonly FioWorkload[] Workloads = [FioWorkload.RandWrite4K, FioWorkload.RandWrite4KQD1];
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(1);
    private const int CheckpointSeconds = 1;

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        string disk = work.Disk();
        var results = await work.EachServerRunAsync("bitmap-cost", (server, folder) => RunOnceAsync(server, disk, folder, options, cancellationToken), cancellationToken);

        var table = new StringBuilder();
        table.AppendLine("### Cost of dirty bitmaps");
        table.AppendLine();
        table.AppendLine($"Guest: fio over NBD on a {options.DiskSize >> 20} MiB raw image, {options.Phase.TotalSeconds:0.#} s per workload and row after an unmeasured "
            + $"{Warmup.TotalSeconds:0} s warm-up; bitmaps added before a row and removed after it. {options.Runs} run(s) per server, alternated; IOPS medians; "
            + "ratios to the same server without bitmaps within each run, then their median. Target: Strata ≥ 0.98× itself without bitmaps, and ahead of qemu-storage-daemon.");
        table.AppendLine();
        var names = work.Servers.Select(s => s.Name).ToList();
        table.AppendLine($"| workload | bitmaps | {string.Join(" | ", names.Select(n => $"{n} IOPS | {n} / itself without | {n} CPU µs/request | {n} CPU / itself without"))} | {names[0]} / {names[^1]} |");
        table.AppendLine($"| --- | --- |{string.Concat(names.Select(_ => " ---: | ---: | ---: | ---: |"))} ---: |");
        foreach (var workload in Workloads)
        {
            foreach (var row in BitmapCase.All)
            {
                var cells = new List<string>();
                var medians = new List<double>();
                foreach (string name in names)
                {
                    var runs = results[name];
                    double iops = BenchStats.Median(runs.Select(r => r.Iops.GetValueOrDefault((workload, row), double.NaN)));
                    medians.Add(iops);
                    cells.Add(Cells.Number(iops, "N0"));
                    cells.Add(ToItself(runs.Select(r => r.Iops), workload, row));
                    cells.Add(Cells.Number(BenchStats.Median(runs.Select(r => r.CpuMicroseconds.GetValueOrDefault((workload, row), double.NaN))), "0.00"));
                    cells.Add(ToItself(runs.Select(r => r.CpuMicroseconds), workload, row));
                }

                table.AppendLine($"| {workload.Label} | {row.Label} | {string.Join(" | ", cells)} | {Cells.Ratio(medians[0], medians[^1])} |");
            }
        }

        table.AppendLine();
        table.AppendLine($"Strata runs with `--bitmap-checkpoint {CheckpointSeconds}`: a crash-safe file's bits are written (under a drain) every second, about "
            + $"{options.Phase.TotalSeconds / CheckpointSeconds:0} times a phase, instead of every 30 s by default.");

        return table.ToString();
    }

    private static async Task<CostRun> RunOnceAsync(ServerKind kind, string disk, string folder, LiveOptions options, CancellationToken cancellationToken)
    {
        await using var server = kind.Create(folder);
        if (server is StrataServer strata)
        {
            // Checkpoints every second instead of every 30 s, so each phase of the crash-safe rows pays
            // a few (a checkpoint writes the bits under a drain); rows without files have none to write.
            strata.ExtraArguments = ["--bitmap-checkpoint", CheckpointSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        }

        await server.StartAsync(new DiskImage(disk, "raw"), cancellationToken);
        var iops = new Dictionary<(FioWorkload, BitmapCase), double>();
        var cpu = new Dictionary<(FioWorkload, BitmapCase), double>();
        foreach (var workload in Workloads)
        {
            // Not measured: a fresh server's first requests (a .NET server compiles its I/O path then).
            await Fio.RunAsync(workload, server.NbdUri, options.DiskSize, Warmup, cancellationToken);
            foreach (var row in BitmapCase.All)
            {
                if (row.File && server.Name != "strata")
                {
                    continue;
                }

                var names = await AddAsync(server, row, folder, cancellationToken);
                double cpuBefore = server.CpuSeconds();
                double rate = await Fio.RunAsync(workload, server.NbdUri, options.DiskSize, options.Phase, cancellationToken);
                iops[(workload, row)] = rate;
                cpu[(workload, row)] = (server.CpuSeconds() - cpuBefore) * 1e6 / (rate * options.Phase.TotalSeconds);
                foreach (string name in names)
                {
                    await server.ExecuteAsync("block-dirty-bitmap-remove", new JsonObject { ["node"] = server.BitmapNode, ["name"] = name }, cancellationToken);
                }
            }
        }

        return new CostRun(iops, cpu);
    }

    /// <summary>Each run's value of the row over its value without bitmaps, then their median and spread; n/a where the server has no such row.</summary>
    private static string ToItself(IEnumerable<Dictionary<(FioWorkload, BitmapCase), double>> runs, FioWorkload workload, BitmapCase row)
    {
        var ratios = runs.Select(r => r.GetValueOrDefault((workload, row), double.NaN) / r[(workload, BitmapCase.None)]).ToList();
        return ratios.All(double.IsNaN) ? "n/a" : Cells.WithSpread(ratios);
    }

    /// <summary>Adds the row's bitmaps, recording; their names.</summary>
    private static async Task<List<string>> AddAsync(LiveServer server, BitmapCase row, string folder, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        for (int i = 0; i < row.Count; i++)
        {
            string name = $"b{i}";
            var arguments = new JsonObject { ["node"] = server.BitmapNode, ["name"] = name, ["granularity"] = row.Granularity };
            if (row.File)
            {
                arguments["file"] = Path.Combine(folder, $"{name}-{Guid.NewGuid():N}.dbmp");
            }

            await server.ExecuteAsync("block-dirty-bitmap-add", arguments, cancellationToken);
            names.Add(name);
        }

        return names;
    }

    /// <param name="Iops">fio's IOPS per workload and row.</param>
    /// <param name="CpuMicroseconds">The server's CPU time per request, in µs: less swayed by a shared machine than IOPS.</param>
    private sealed record CostRun(Dictionary<(FioWorkload, BitmapCase), double> Iops, Dictionary<(FioWorkload, BitmapCase), double> CpuMicroseconds);
}
