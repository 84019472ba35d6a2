using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace Strata.Bench.Live;

/// <summary>
/// Whole backups of a served 1 GiB raw disk (256 MiB with --quick), Strata against qemu-storage-daemon
/// in one run: the time of a full and of a 1% incremental backup (<c>strata backup create --drive</c>
/// against qsd's transaction of bitmap-add + drive-backup sync=full, then sync=incremental; and
/// qemu-img convert of the disk for the full), and the guest's IOPS (fio 4 KiB random writes QD16
/// over NBD) idle, during snapshot-based backups (Strata's <c>backup create --drive</c>), during push
/// backups (drive-backup sync=full on both) and during pull backups (Strata: a frozen layer exported
/// with its bitmap; qsd: QEMU's fleecing, blockdev-backup sync=none into a qcow2 whose backing is the
/// disk, exported) read whole by nbdcopy. Each backup kind is started again and again while fio runs,
/// so it loads the whole phase.
/// </summary>
internal static class BackupLiveBench
{
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(5);
    private static readonly string[] Loads = ["idle", "snapshot", "push", "pull"];

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        string disk = work.Disk();
        var strata = StrataBinary.Locate(options.Strata);
        var results = await work.EachServerRunAsync("backup-live", (server, folder) => RunOnceAsync(server, strata, disk, folder, options, cancellationToken), cancellationToken);
        var names = work.Servers.Select(s => s.Name).ToList();

        var table = new StringBuilder();
        table.AppendLine("### Time of a whole backup");
        table.AppendLine();
        table.AppendLine($"A {options.DiskSize >> 20} MiB raw disk written throughout, served; a full backup, then fio writes 1% of the disk in distinct 64 KiB blocks, then an "
            + "incremental. strata: `strata backup create SET --drive` (the whole command: transaction, copy, hashes, manifest, merge back); qsd: transaction "
            + "{block-dirty-bitmap-add, drive-backup sync=full} then drive-backup sync=incremental, to BLOCK_JOB_COMPLETED; qemu-img: `convert -U -O qcow2` of the "
            + $"disk file. Seconds; {options.Runs} run(s), medians ± half the range.");
        table.AppendLine();
        table.AppendLine("| backup | strata backup create s | qsd drive-backup s | qemu-img convert s | strata / qsd |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        var strataRuns = results[names[0]];
        var qsdRuns = results[names[^1]];
        foreach (var (label, pick) in new (string, Func<BackupLiveRun, double>)[] { ("full", r => r.Full), ("1% incremental", r => r.Incremental) })
        {
            var s = strataRuns.Select(pick).ToList();
            var q = qsdRuns.Select(pick).ToList();
            string convert = label == "full" ? Cells.WithSpread(qsdRuns.Select(r => r.Convert).ToList(), "0.000") : "";
            table.AppendLine($"| {label} | {Cells.WithSpread(s, "0.000")} | {Cells.WithSpread(q, "0.000")} | {convert} | {Cells.Ratio(BenchStats.Median(s), BenchStats.Median(q))} |");
        }

        table.AppendLine();
        table.AppendLine("### Guest writes during backups");
        table.AppendLine();
        table.AppendLine($"fio randwrite 4 KiB QD16 over NBD for {options.Phase.TotalSeconds:0.#} s per row, while backups of the given kind run back to back. "
            + "snapshot: strata backup create --drive, full, into a new set each time (Strata only). push: drive-backup sync=full into a new qcow2. "
            + "pull: the point-in-time view exported over NBD and read whole by nbdcopy (Strata: the frozen layer after a transaction "
            + "{bitmap-add, snapshot}; qsd: fleecing). IOPS medians ± half the range; ratio to idle within each run, then the median.");
        table.AppendLine();
        table.AppendLine($"| load | {string.Join(" | ", names.Select(n => $"{n} IOPS | {n} / idle"))} | {names[0]} / {names[^1]} IOPS |");
        table.AppendLine($"| --- |{string.Concat(names.Select(_ => " ---: | ---: |"))} ---: |");
        foreach (string load in Loads)
        {
            var cells = new List<string>();
            var medians = new List<double>();
            foreach (string name in names)
            {
                var runs = results[name];
                var iops = runs.Select(r => r.Iops.GetValueOrDefault(load, double.NaN)).ToList();
                medians.Add(BenchStats.Median(iops));
                cells.Add(Cells.WithSpread(iops, "N0"));
                cells.Add(Cells.WithSpread(runs.Select(r => r.Iops.GetValueOrDefault(load, double.NaN) / r.Iops["idle"]).ToList()));
            }

            table.AppendLine($"| {load} | {string.Join(" | ", cells)} | {Cells.Ratio(medians[0], medians[^1])} |");
        }

        return table.ToString();
    }

    private static async Task<BackupLiveRun> RunOnceAsync(ServerKind kind, (string Program, string[] Prefix) strata, string disk, string folder, LiveOptions options,
        CancellationToken cancellationToken)
    {
        string copy = Path.Combine(folder, "disk.raw");
        File.Copy(disk, copy);
        long size = options.DiskSize;
        await using var server = kind.Create(folder);
        await server.StartAsync(new DiskImage(copy, "raw"), cancellationToken);
        bool isStrata = server.Name == "strata";
        int job = 0;

        Task<double> StrataBackupAsync(string set) => TimedAsync(strata.Program,
            [.. strata.Prefix, "backup", "create", set, "--drive", server.BitmapNode, "--qmp", server.ControlSocket], cancellationToken);
        async Task<double> PushAsync(string sync, string? bitmap, bool addBitmap = false)
        {
            string id = $"backup{++job}";
            var backup = new JsonObject { ["job-id"] = id, ["device"] = server.BitmapNode, ["target"] = Path.Combine(folder, $"{id}.qcow2"), ["format"] = "qcow2", ["sync"] = sync };
            if (bitmap is not null && !addBitmap)
            {
                backup["bitmap"] = bitmap;
            }

            var (command, arguments) = addBitmap
                ? ("transaction", new JsonObject
                {
                    ["actions"] = new JsonArray
                    {
                        (JsonNode)new JsonObject { ["type"] = "block-dirty-bitmap-add", ["data"] = new JsonObject { ["node"] = server.BitmapNode, ["name"] = bitmap, ["granularity"] = 65536 } },
                        (JsonNode)new JsonObject { ["type"] = "drive-backup", ["data"] = backup },
                    },
                })
                : ("drive-backup", backup);
            var (took, failure) = await server.RunJobAsync(command, arguments, id, JobTimeout, cancellationToken);
            File.Delete(Path.Combine(folder, $"{id}.qcow2"));
            return took?.TotalSeconds ?? Failed($"{server.Name} {sync} backup: {failure}");
        }

        double full, incremental, convert = double.NaN;
        string set = Path.Combine(folder, "set");
        if (isStrata)
        {
            full = await StrataBackupAsync(set);
            await DirtyAsync(server, size, cancellationToken);
            incremental = await StrataBackupAsync(set);
        }
        else
        {
            full = await PushAsync("full", "b", addBitmap: true);
            await DirtyAsync(server, size, cancellationToken);
            incremental = await PushAsync("incremental", "b");
            string converted = Path.Combine(folder, "convert.qcow2");
            convert = await TimedAsync("qemu-img", ["convert", "-U", "-f", "raw", "-O", "qcow2", copy, converted], cancellationToken);
            File.Delete(converted);
        }

        // A first short job warms both servers' write paths (and Strata's JIT) before anything is measured.
        await Fio.RunAsync(FioWorkload.RandWrite4KQD16, server.NbdUri, size, TimeSpan.FromSeconds(1), cancellationToken);
        var iops = new Dictionary<string, double>
        {
            ["idle"] = await Fio.RunAsync(FioWorkload.RandWrite4KQD16, server.NbdUri, size, options.Phase, cancellationToken),
        };
        if (isStrata)
        {
            int sets = 0;
            iops["snapshot"] = await DuringAsync(server, size, options.Phase, () => StrataBackupAsync(Path.Combine(folder, $"set{++sets}")), cancellationToken);
        }

        iops["push"] = await DuringAsync(server, size, options.Phase, () => PushAsync("full", null), cancellationToken);
        iops["pull"] = isStrata
            ? await StrataPullAsync(server, folder, size, options.Phase, cancellationToken)
            : await QsdPullAsync(server, copy, folder, size, options.Phase, cancellationToken);
        return new BackupLiveRun(full, incremental, convert, iops);
    }

    /// <summary>fio writes 1% of the disk in distinct 64 KiB blocks.</summary>
    private static async Task DirtyAsync(LiveServer server, long size, CancellationToken cancellationToken)
    {
        long bytes = size / 100 / 65536 * 65536;
        await BenchProcess.RunAsync("fio", [
            "--name=dirty", "--ioengine=nbd", $"--uri={server.NbdUri}", "--rw=randwrite", "--bs=64k", "--iodepth=16",
            $"--size={size}", $"--io_size={bytes}", "--randrepeat=1", "--output-format=terse",
        ], timeout: TimeSpan.FromMinutes(5), cancellationToken: cancellationToken);
    }

    /// <summary>The guest's IOPS over one phase while <paramref name="backup"/> runs again and again (the last one is let finish).</summary>
    private static async Task<double> DuringAsync(LiveServer server, long size, TimeSpan phase, Func<Task<double>> backup, CancellationToken cancellationToken)
    {
        await using var fio = Fio.Start(FioWorkload.RandWrite4KQD16, server.NbdUri, size, phase);
        for (int round = 0; !fio.HasExited && round < 1000; round++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await backup();
        }

        return await Fio.EndAsync(fio, phase);
    }

    /// <summary>
    /// Strata's pull backup: one transaction (a bitmap starts, the drive moves to an overlay), the
    /// frozen disk exported with nbdcopy reading it whole while fio writes, then the export removed
    /// and the overlay merged back.
    /// </summary>
    private static async Task<double> StrataPullAsync(LiveServer server, string folder, long size, TimeSpan phase, CancellationToken cancellationToken)
    {
        string frozen = Path.Combine(folder, "disk.raw");
        await server.ExecuteAsync("transaction", new JsonObject
        {
            ["actions"] = new JsonArray
            {
                (JsonNode)new JsonObject { ["type"] = "block-dirty-bitmap-add", ["data"] = new JsonObject { ["node"] = server.BitmapNode, ["name"] = "pull" } },
                (JsonNode)new JsonObject
                {
                    ["type"] = "blockdev-snapshot-sync",
                    ["data"] = new JsonObject { ["device"] = server.BitmapNode, ["snapshot-file"] = Path.Combine(folder, "pull-overlay.qcow2"), ["format"] = "qcow2" },
                },
            },
        }, cancellationToken);
        await server.ExecuteAsync("block-export-add", new JsonObject { ["type"] = "nbd", ["id"] = "pull", ["node-name"] = frozen, ["name"] = "pull" }, cancellationToken);
        double iops = await DuringAsync(server, size, phase, () => TimedAsync("nbdcopy", [server.ExportUri("pull"), "null:"], cancellationToken), cancellationToken);
        await server.ExecuteAsync("block-export-del", new JsonObject { ["id"] = "pull" }, cancellationToken);
        var merged = await server.MergeAsync(JobTimeout, cancellationToken);
        return merged.Failure is null ? iops : Failed($"strata pull: merge back: {merged.Failure}");
    }

    /// <summary>
    /// QEMU's fleecing (qemu-iotests 222): a qcow2 whose backing is the disk node takes, by
    /// blockdev-backup sync=none, the old data of every block the guest overwrites; exported, it
    /// reads as the disk did at the start. nbdcopy reads it whole while fio writes.
    /// </summary>
    private static async Task<double> QsdPullAsync(LiveServer server, string disk, string folder, long size, TimeSpan phase, CancellationToken cancellationToken)
    {
        string fleece = Path.Combine(folder, "fleece.qcow2");
        await TimedAsync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", disk, "-F", "raw", fleece], cancellationToken);
        await server.ExecuteAsync("blockdev-add", new JsonObject
        {
            ["driver"] = "qcow2", ["node-name"] = "fleece", ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = fleece }, ["backing"] = server.BitmapNode,
        }, cancellationToken);
        await server.ExecuteAsync("blockdev-backup", new JsonObject { ["job-id"] = "fleecing", ["device"] = server.BitmapNode, ["target"] = "fleece", ["sync"] = "none" },
            cancellationToken);
        await server.ExecuteAsync("block-export-add", new JsonObject { ["type"] = "nbd", ["id"] = "pull", ["node-name"] = "fleece", ["name"] = "pull" }, cancellationToken);
        double iops = await DuringAsync(server, size, phase, () => TimedAsync("nbdcopy", [server.ExportUri("pull"), "null:"], cancellationToken), cancellationToken);
        await server.ExecuteAsync("block-export-del", new JsonObject { ["id"] = "pull" }, cancellationToken);
        await server.RunJobAsync("job-cancel", new JsonObject { ["id"] = "fleecing" }, "fleecing", JobTimeout, cancellationToken);
        return iops;
    }

    /// <summary>Seconds <paramref name="program"/> took; NaN (with a message) when it failed.</summary>
    private static async Task<double> TimedAsync(string program, IEnumerable<string> args, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var result = await BenchProcess.RunAsync(program, args, timeout: JobTimeout, cancellationToken: cancellationToken);
        return result.ExitCode == 0 ? clock.Elapsed.TotalSeconds : Failed($"{program} {string.Join(' ', args)}: {result.Stderr.Trim()}");
    }

    private static double Failed(string what)
    {
        Console.Error.WriteLine($"backup-live bench: {what}");
        return double.NaN;
    }
}
