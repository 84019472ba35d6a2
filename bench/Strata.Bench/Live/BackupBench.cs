using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Strata.Bench.Live;

/// <summary>
/// Push backups (drive-backup) of a served raw disk written throughout, on Strata and on
/// qemu-storage-daemon with the same QMP: an incremental backup after the guest has written 1%,
/// 10% and 50% of the disk (fio, distinct 64 KiB blocks) with a 64 KiB bitmap recording, a full
/// backup, and the guest's IOPS (4 KiB random writes, QD32) while a full backup runs against the
/// same guest without one. Targets are new qcow2 images beside the disk (tmpfs by default).
/// </summary>
internal static class BackupBench
{
    private static readonly double[] Fractions = [0.01, 0.10, 0.50];
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(1);

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        string disk = work.BackupDisk();
        var results = await work.EachServerRunAsync("backup", (server, folder) => RunOnceAsync(server, disk, folder, options, cancellationToken), cancellationToken);
        var names = work.Servers.Select(s => s.Name).ToList();
        long size = options.BackupDiskSize;

        var table = new StringBuilder();
        table.AppendLine("### Incremental and full push backups");
        table.AppendLine();
        table.AppendLine($"A {size >> 20} MiB raw disk written throughout; a 64 KiB bitmap records while fio writes the given share of the disk in distinct 64 KiB blocks; "
            + "then drive-backup sync=incremental into a new qcow2 target, then sync=full into another. Seconds from the command to BLOCK_JOB_COMPLETED. "
            + $"{options.Runs} run(s) per server, alternated; medians, ± half the range. Target: incremental at least as fast as QEMU; 1% dirty under 5% of a full backup.");
        table.AppendLine();
        table.AppendLine($"| dirty | {string.Join(" | ", names.Select(n => $"{n} incremental s | {n} target MiB | {n} incremental / full"))} | {names[0]} / {names[^1]} time |");
        table.AppendLine($"| ---: |{string.Concat(names.Select(_ => " ---: | ---: | ---: |"))} ---: |");
        foreach (double fraction in Fractions)
        {
            var cells = new List<string>();
            var medians = new List<double>();
            foreach (string name in names)
            {
                var runs = results[name];
                var times = runs.Select(r => r.Incremental[fraction]).ToList();
                medians.Add(BenchStats.Median(times));
                cells.Add(Cells.WithSpread(times, "0.000"));
                cells.Add(Cells.Number(BenchStats.Median(runs.Select(r => r.TargetBytes[fraction] / 1048576.0)), "0.0"));
                cells.Add(Cells.Number(BenchStats.Median(runs.Select(r => r.Incremental[fraction] / r.Full)), "0.000"));
            }

            table.AppendLine($"| {fraction * 100:0}% | {string.Join(" | ", cells)} | {Cells.Ratio(medians[0], medians[^1])} |");
        }

        table.AppendLine();
        table.AppendLine($"Full backup: {string.Join(", ", names.Select(n => $"{n} {Cells.WithSpread(results[n].Select(r => r.Full).ToList(), "0.000")} s"))}.");
        table.AppendLine();
        table.AppendLine("### Guest writes during a full push backup");
        table.AppendLine();
        table.AppendLine($"fio randwrite 4 KiB QD32, {options.Phase.TotalSeconds:0.#} s without a backup, then {options.Phase.TotalSeconds:0.#} s while a full drive-backup runs "
            + "(speed-limited so that it outlasts the phase; cancelled after it). IOPS medians; ratio within each run, then the median.");
        table.AppendLine();
        table.AppendLine("| server | IOPS without | IOPS during | during / without |");
        table.AppendLine("| --- | ---: | ---: | ---: |");
        foreach (string name in names)
        {
            var runs = results[name];
            table.AppendLine($"| {name} | {Cells.Number(BenchStats.Median(runs.Select(r => r.IopsWithout)), "N0")} | {Cells.Number(BenchStats.Median(runs.Select(r => r.IopsDuring)), "N0")} | "
                + $"{Cells.WithSpread(runs.Select(r => r.IopsDuring / r.IopsWithout).ToList())} |");
        }

        return table.ToString();
    }

    private static async Task<BackupRun> RunOnceAsync(ServerKind kind, string disk, string folder, LiveOptions options, CancellationToken cancellationToken)
    {
        string copy = Path.Combine(folder, "disk.raw");
        File.Copy(disk, copy);
        long size = options.BackupDiskSize;
        await using var server = kind.Create(folder);
        await server.StartAsync(new DiskImage(copy, "raw"), cancellationToken);
        var incremental = new Dictionary<double, double>();
        var targetBytes = new Dictionary<double, double>();
        int job = 0;
        foreach (double fraction in Fractions)
        {
            await server.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = server.BitmapNode, ["name"] = "b", ["granularity"] = 65536 }, cancellationToken);
            long bytes = (long)(size * fraction) / 65536 * 65536;
            await BenchProcess.RunAsync("fio", [
                "--name=dirty", "--ioengine=nbd", $"--uri={server.NbdUri}", "--rw=randwrite", "--bs=64k", "--iodepth=16",
                $"--size={size}", $"--io_size={bytes}", "--randrepeat=1", "--output-format=terse",
            ], timeout: TimeSpan.FromMinutes(5), cancellationToken: cancellationToken);
            string target = Path.Combine(folder, $"inc-{fraction.ToString(CultureInfo.InvariantCulture)}.qcow2");
            string id = $"backup{++job}";
            var (took, failure) = await server.RunJobAsync("drive-backup", new JsonObject
            {
                ["job-id"] = id, ["device"] = server.BitmapNode, ["target"] = target, ["format"] = "qcow2", ["sync"] = "incremental", ["bitmap"] = "b",
            }, id, JobTimeout, cancellationToken);
            incremental[fraction] = Seconds(took, failure, $"{server.Name} incremental {fraction:P0}");
            targetBytes[fraction] = File.Exists(target) ? await AllocatedBytesAsync(target, cancellationToken) : double.NaN;
            File.Delete(target);
            await server.ExecuteAsync("block-dirty-bitmap-remove", new JsonObject { ["node"] = server.BitmapNode, ["name"] = "b" }, cancellationToken);
        }

        string fullTarget = Path.Combine(folder, "full.qcow2");
        string fullId = $"backup{++job}";
        var full = await server.RunJobAsync("drive-backup", new JsonObject
        {
            ["job-id"] = fullId, ["device"] = server.BitmapNode, ["target"] = fullTarget, ["format"] = "qcow2", ["sync"] = "full",
        }, fullId, JobTimeout, cancellationToken);
        double fullSeconds = Seconds(full.Took, full.Failure, $"{server.Name} full");
        File.Delete(fullTarget);

        // Guest writes with and without a running full backup, throttled to outlast the phase.
        await Fio.RunAsync(FioWorkload.RandWrite4K, server.NbdUri, size, Warmup, cancellationToken);
        double without = await Fio.RunAsync(FioWorkload.RandWrite4K, server.NbdUri, size, options.Phase, cancellationToken);
        string duringId = $"backup{++job}";
        long speed = (long)(size / (2 * options.Phase.TotalSeconds));
        await server.ExecuteAsync("drive-backup", new JsonObject
        {
            ["job-id"] = duringId, ["device"] = server.BitmapNode, ["target"] = Path.Combine(folder, "during.qcow2"), ["format"] = "qcow2",
            ["sync"] = "full", ["speed"] = speed,
        }, cancellationToken);
        double during = await Fio.RunAsync(FioWorkload.RandWrite4K, server.NbdUri, size, options.Phase, cancellationToken);
        try
        {
            await server.ExecuteAsync("job-cancel", new JsonObject { ["id"] = duringId }, cancellationToken);
        }
        catch (InvalidOperationException)
        {
            // It may have finished already.
        }

        return new BackupRun(incremental, targetBytes, fullSeconds, without, during);
    }

    private static double Seconds(TimeSpan? took, string? failure, string what)
    {
        if (took is { } t)
        {
            return t.TotalSeconds;
        }

        Console.Error.WriteLine($"backup bench: {what}: {failure}");
        return double.NaN;
    }

    // The bytes the file holds on its file system (a sparse qcow2 holds what the backup wrote).
    private static async Task<double> AllocatedBytesAsync(string path, CancellationToken cancellationToken)
    {
        var result = await BenchProcess.RunAsync("stat", ["-c", "%b %B", path], cancellationToken: cancellationToken);
        var parts = result.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length == 2 ? double.Parse(parts[0], CultureInfo.InvariantCulture) * double.Parse(parts[1], CultureInfo.InvariantCulture) : double.NaN;
    }

    private sealed record BackupRun(Dictionary<double, double> Incremental, Dictionary<double, double> TargetBytes, double Full, double IopsWithout, double IopsDuring);
}
