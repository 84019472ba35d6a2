using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Strata.Bench.Live;

/// <summary>
/// What an incremental backup costs against a full one (issue 13's benchmark): a served raw disk
/// written throughout (4 GiB; 256 MiB with --quick), a full backup, then for 1%, 10% and 50% fio
/// writes that share of the disk in distinct 64 KiB blocks (the same seeded blocks on both servers)
/// and an incremental backup follows. Strata: <c>strata backup create SET --drive</c>, the whole
/// command (transaction, copy, chunk hashes, manifest, merge back), and within it the backup of the
/// frozen image that <c>--image</c> does (its -v line). qsd: transaction {block-dirty-bitmap-add,
/// drive-backup sync=full}, then drive-backup sync=incremental with that bitmap (QEMU's backup job,
/// as blockdev-backup runs it), to BLOCK_JOB_COMPLETED. Bytes read: the growth of rchar in
/// /proc/PID/io (every read(2)-family call, page cache included) of strata's process, and of
/// qsd's process over its job.
/// </summary>
internal static class BackupCreateBench
{
    private static readonly double[] Fractions = [0.01, 0.10, 0.50];
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(10);
    private const string FrozenPhase = "strata backup: drive: backup of the frozen image: ";

    private static string Row(double fraction) => $"{fraction * 100:0}%";

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        string disk = work.BackupDisk();
        var strata = StrataBinary.Locate(options.Strata);
        var results = await work.EachServerRunAsync("backup-create", (server, folder) => RunOnceAsync(server, strata, disk, folder, options, cancellationToken), cancellationToken);
        var names = work.Servers.Select(s => s.Name).ToList();
        var s = results[names[0]];
        var q = results[names[^1]];

        var table = new StringBuilder();
        table.AppendLine("### Incremental against full, `strata backup create` against qsd's backup job");
        table.AppendLine();
        table.AppendLine($"A {options.BackupDiskSize >> 20} MiB raw disk written throughout, served; a full backup, then for each row fio writes that share of the disk "
            + "in distinct 64 KiB blocks (the same seeded blocks on both servers) and an incremental backup follows, on the previous point. strata: `strata backup create SET --drive` "
            + "(the whole command: process start, transaction, copy, chunk hashes, manifest, merge back); \"image part\": the backup of the frozen image within it, what "
            + "`--image` does. qsd: transaction {block-dirty-bitmap-add, drive-backup sync=full}, then drive-backup sync=incremental with that bitmap, to BLOCK_JOB_COMPLETED. "
            + $"Read: rchar growth (/proc/PID/io) of strata's process, of qsd's over its job. {options.Runs} run(s) per server, alternated; medians ± half the range; "
            + "ratios within each run, then the median.");
        table.AppendLine();
        table.AppendLine("| backup | strata s | strata image part s | strata read MiB | strata / its full | qsd s | qsd read MiB | qsd / its full | strata / qsd time |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (string row in Fractions.Select(Row).Prepend("full"))
        {
            var st = s.Select(r => r.Seconds[row]).ToList();
            var qt = q.Select(r => r.Seconds[row]).ToList();
            table.AppendLine($"| {(row == "full" ? "full" : row + " incremental")} | {Cells.WithSpread(st, "0.000")} | {Cells.WithSpread(s.Select(r => r.ImageSeconds[row]).ToList(), "0.000")} | "
                + $"{Cells.Number(BenchStats.Median(s.Select(r => r.BytesRead[row] / 1048576.0)), "0.0")} | {Cells.Number(BenchStats.Median(s.Select(r => r.Seconds[row] / r.Seconds["full"])), "0.000")} | "
                + $"{Cells.WithSpread(qt, "0.000")} | {Cells.Number(BenchStats.Median(q.Select(r => r.BytesRead[row] / 1048576.0)), "0.0")} | "
                + $"{Cells.Number(BenchStats.Median(q.Select(r => r.Seconds[row] / r.Seconds["full"])), "0.000")} | "
                + $"{Cells.Ratio(BenchStats.Median(s.Zip(q, (a, b) => a.Seconds[row] / b.Seconds[row])), 1)} |");
        }

        return table.ToString();
    }

    private static async Task<BackupCreateRun> RunOnceAsync(ServerKind kind, (string Program, string[] Prefix) strata, string disk, string folder, LiveOptions options,
        CancellationToken cancellationToken)
    {
        // The shared disk is served as it is: the rows need data throughout, not any particular data.
        long size = options.BackupDiskSize;
        await using var server = kind.Create(folder);
        await server.StartAsync(new DiskImage(disk, "raw"), cancellationToken);
        var run = new BackupCreateRun([], [], []);
        string set = Path.Combine(folder, "set");
        int job = 0;
        async Task MeasureAsync(string row)
        {
            if (server.Name == "strata")
            {
                var (seconds, read, stderr) = await CountedAsync(strata.Program, [.. strata.Prefix, "backup", "create", set, "--drive", server.BitmapNode, "--qmp", server.ControlSocket, "-v"],
                    cancellationToken);
                run.Seconds[row] = seconds;
                run.BytesRead[row] = read;
                string? line = stderr.Split('\n').FirstOrDefault(l => l.StartsWith(FrozenPhase, StringComparison.Ordinal));
                run.ImageSeconds[row] = line is null ? double.NaN : double.Parse(line[FrozenPhase.Length..].Split(' ')[0], CultureInfo.InvariantCulture);
                return;
            }

            string id = $"backup{++job}";
            string target = Path.Combine(folder, $"{id}.qcow2");
            var backup = new JsonObject { ["job-id"] = id, ["device"] = server.BitmapNode, ["target"] = target, ["format"] = "qcow2" };
            (string, JsonObject) command;
            if (row == "full")
            {
                backup["sync"] = "full";
                command = ("transaction", new JsonObject
                {
                    ["actions"] = new JsonArray
                    {
                        (JsonNode)new JsonObject { ["type"] = "block-dirty-bitmap-add", ["data"] = new JsonObject { ["node"] = server.BitmapNode, ["name"] = "b", ["granularity"] = 65536 } },
                        (JsonNode)new JsonObject { ["type"] = "drive-backup", ["data"] = backup },
                    },
                });
            }
            else
            {
                backup["sync"] = "incremental";
                backup["bitmap"] = "b";
                command = ("drive-backup", backup);
            }

            long before = server.ReadBytes();
            var (took, failure) = await server.RunJobAsync(command.Item1, command.Item2, id, JobTimeout, cancellationToken);
            run.BytesRead[row] = server.ReadBytes() - before;
            run.Seconds[row] = took?.TotalSeconds ?? Failed($"qsd {row}: {failure}");
            run.ImageSeconds[row] = double.NaN;
            File.Delete(target);
        }

        await MeasureAsync("full");
        for (int i = 0; i < Fractions.Length; i++)
        {
            long bytes = (long)(size * Fractions[i]) / 65536 * 65536;
            await BenchProcess.RunAsync("fio", [
                "--name=dirty", "--ioengine=nbd", $"--uri={server.NbdUri}", "--rw=randwrite", "--bs=64k", "--iodepth=16",
                $"--size={size}", $"--io_size={bytes}", $"--randseed={options.Seed + i}", "--output-format=terse",
            ], timeout: TimeSpan.FromMinutes(5), cancellationToken: cancellationToken);
            await MeasureAsync(Row(Fractions[i]));
        }

        return run;
    }

    /// <summary>
    /// Runs <paramref name="program"/> under a shell that reads its own rchar before and after: a
    /// child's I/O counts are added to its parent's when it is reaped, so the difference is what the
    /// program read (plus the shell's few hundred bytes).
    /// </summary>
    private static async Task<(double Seconds, double Read, string Stderr)> CountedAsync(string program, IEnumerable<string> args, CancellationToken cancellationToken)
    {
        const string script = "r() { while read -r k v; do [ \"$k\" = rchar: ] && echo \"$v\"; done < /proc/$$/io; }; a=$(r); \"$@\"; s=$?; b=$(r); echo \"rchar $((b - a))\" >&2; exit $s";
        var clock = Stopwatch.StartNew();
        var result = await BenchProcess.RunAsync("bash", ["-c", script, "counted", program, .. args], timeout: JobTimeout, cancellationToken: cancellationToken);
        double seconds = clock.Elapsed.TotalSeconds;
        if (result.ExitCode != 0)
        {
            return (Failed($"{program} {string.Join(' ', args)}: {result.Stderr.Trim()}"), double.NaN, result.Stderr);
        }

        string? counted = result.Stderr.Split('\n').LastOrDefault(l => l.StartsWith("rchar ", StringComparison.Ordinal));
        return (seconds, counted is null ? double.NaN : double.Parse(counted[6..], CultureInfo.InvariantCulture), result.Stderr);
    }

    private static double Failed(string what)
    {
        Console.Error.WriteLine($"backup-create bench: {what}");
        return double.NaN;
    }
}
