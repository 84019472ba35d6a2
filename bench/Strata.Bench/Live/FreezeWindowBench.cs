using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Strata.Guest;

namespace Strata.Bench.Live;

/// <summary>
/// How long a consistent snapshot keeps the guest frozen (docs/benchmarks/guest-freeze.md). The test
/// guest (guest/) runs its writer on an ext4 disk exported over NBD, qemu-ga on its virtio-serial
/// port. Strata: one command, blockdev-snapshot-sync with x-strata-freeze, whose reply times the
/// freeze, the switch and the thaw inside the daemon. QEMU: what its user scripts, with
/// qemu-storage-daemon serving the disk: guest-fsfreeze-freeze on the agent's socket,
/// blockdev-snapshot-sync on qsd's QMP, guest-fsfreeze-thaw, timed here. Frozen window: freeze sent
/// → thaw acknowledged.
/// </summary>
internal static class FreezeWindowBench
{
    private const int DiskMegabytes = 64;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        Console.Error.WriteLine("freeze-window: building the test guest (guest/build-initramfs.sh)");
        var build = await BenchGuest.BuildAsync(Path.Combine(work.Folder, "guest"), cancellationToken);
        var runs = await work.EachServerRunAsync("freeze-window", (server, folder) => RunOnceAsync(server, build, folder, options, cancellationToken), cancellationToken);
        var (strata, qsd) = (runs["strata"], runs["qsd"]);

        string Row(string measure, Func<FreezeSample, double> field)
        {
            var s = strata.Select(r => Summary.Of(r.Select(field))).ToList();
            var q = qsd.Select(r => Summary.Of(r.Select(field))).ToList();
            var (sm, qm) = (Summary.Median(s), Summary.Median(q));
            return $"| {measure} | {Cells.Number(sm.P50)} / {Cells.Number(sm.P99)} | {Band(s)} | {Cells.Number(qm.P50)} / {Cells.Number(qm.P99)} | {Band(q)} "
                + $"| {Cells.Ratio(qm.P50, sm.P50)} | {Cells.Ratio(qm.P99, sm.P99)} |";
        }

        var table = new StringBuilder();
        table.AppendLine("### Frozen window of a consistent snapshot");
        table.AppendLine();
        table.AppendLine($"Guest: guest/ under qemu-system-x86_64 -accel tcg, its writer fsyncing files on a {DiskMegabytes} MiB ext4 disk served over NBD, "
            + $"qemu-ga on its virtio-serial port. {options.Snapshots} consistent snapshots {Interval.TotalMilliseconds:0} ms apart per run, {options.Runs} run(s) per server, alternated. "
            + "Strata: blockdev-snapshot-sync with x-strata-freeze (times from its reply). QEMU: guest-fsfreeze-freeze, then blockdev-snapshot-sync on qemu-storage-daemon, "
            + "then guest-fsfreeze-thaw, as a script does (times taken by the benchmark). Cells: p50 / p99 within a run, median over the runs, in ms; band: the runs' p50 lowest–highest. "
            + "Ratios qsd/strata: above 1.00× Strata keeps the guest frozen for less.");
        table.AppendLine();
        table.AppendLine("| measure (ms) | strata p50 / p99 | strata p50 band | qsd p50 / p99 | qsd p50 band | qsd/strata p50 | qsd/strata p99 |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        table.AppendLine(Row("guest frozen (freeze sent → thaw acknowledged)", s => s.Frozen));
        table.AppendLine(Row("of which the switch (blockdev-snapshot-sync)", s => s.Switch));
        table.AppendLine(Row("the whole consistent snapshot, as its caller waits", s => s.Total));
        return table.ToString();
    }

    private static string Band(List<Summary> runs) =>
        $"{Cells.Number(runs.Select(r => r.P50).DefaultIfEmpty(double.NaN).Min())}–{Cells.Number(runs.Select(r => r.P50).DefaultIfEmpty(double.NaN).Max())}";

    private static async Task<List<FreezeSample>> RunOnceAsync(ServerKind kind, (string Kernel, string Initramfs) build, string folder, LiveOptions options,
        CancellationToken cancellationToken)
    {
        string disk = await BenchGuest.DiskAsync(folder, DiskMegabytes, cancellationToken);
        string agentSocket = Path.Combine(folder, "qga.sock");
        await using var server = kind.Name == "strata"
            ? new StrataServer(StrataBinary.Locate(options.Strata).Program, StrataBinary.Locate(options.Strata).Prefix, folder)
            {
                ExtraArguments = ["--guest", $"id=vm0,socket={agentSocket},drives=disk"],
            }
            : kind.Create(folder);
        await server.StartAsync(new DiskImage(disk, "raw"), cancellationToken);
        await using var guest = await BenchGuest.BootWriterAsync(build, folder, server.NbdSocket, options.Seed, cancellationToken);
        var samples = new List<FreezeSample>();
        if (server is StrataServer)
        {
            await WaitForGuestAsync(server, cancellationToken);
            for (int i = 1; i <= options.Snapshots; i++)
            {
                samples.Add(await StrataSnapshotAsync(server, Path.Combine(folder, $"snap{i}.qcow2"), cancellationToken));
                await Task.Delay(Interval, cancellationToken);
            }
        }
        else
        {
            await using var agent = await ConnectAgentAsync(agentSocket, cancellationToken);
            for (int i = 1; i <= options.Snapshots; i++)
            {
                samples.Add(await ScriptedSnapshotAsync(server, agent, Path.Combine(folder, $"snap{i}.qcow2"), cancellationToken));
                await Task.Delay(Interval, cancellationToken);
            }
        }

        return samples;
    }

    /// <summary>Strata's one command; the frozen window and the switch from its reply's timings.</summary>
    private static async Task<FreezeSample> StrataSnapshotAsync(LiveServer server, string overlay, CancellationToken cancellationToken)
    {
        long t0 = Stopwatch.GetTimestamp();
        var reply = await server.ExecuteAsync("blockdev-snapshot-sync",
            new JsonObject { ["device"] = "disk", ["snapshot-file"] = overlay, ["format"] = "qcow2", ["x-strata-freeze"] = true }, cancellationToken);
        double total = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        if (reply?["warnings"] is JsonArray { Count: > 0 } warnings)
        {
            throw new InvalidOperationException($"strata: the snapshot was not consistent: {warnings[0]}");
        }

        var timings = reply?["timings"] ?? throw new InvalidOperationException($"strata: no timings in the reply {reply?.ToJsonString()}");
        double freeze = timings["freeze-ms"]!.GetValue<double>(), swap = timings["switch-ms"]!.GetValue<double>(), thaw = timings["thaw-ms"]!.GetValue<double>();
        return new FreezeSample(freeze + swap + thaw, swap, total);
    }

    /// <summary>What a QEMU user scripts: freeze on the agent, snapshot on qsd, thaw; each step timed here.</summary>
    private static async Task<FreezeSample> ScriptedSnapshotAsync(LiveServer server, GuestAgentClient agent, string overlay, CancellationToken cancellationToken)
    {
        long t0 = Stopwatch.GetTimestamp();
        await agent.FreezeAsync(cancellationToken);
        long t1 = Stopwatch.GetTimestamp();
        try
        {
            await server.SnapshotAsync(overlay, cancellationToken);
        }
        catch
        {
            await agent.ThawAsync(CancellationToken.None);
            throw;
        }

        long t2 = Stopwatch.GetTimestamp();
        await agent.ThawAsync(cancellationToken);
        double frozen = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        return new FreezeSample(frozen, Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds, frozen);
    }

    /// <summary>Waits (bounded) until the daemon's guest channel reached the agent.</summary>
    private static async Task WaitForGuestAsync(LiveServer server, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while ((await server.ExecuteAsync("query-guests", [], cancellationToken))?[0]?["responding"]?.GetValue<bool>() != true)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException("strata: the guest's agent did not answer within 30 s");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>Connects to the guest's agent (bounded retries while qemu-ga starts) and syncs, outside the timings.</summary>
    private static async Task<GuestAgentClient> ConnectAgentAsync(string socket, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            GuestAgentClient? client = null;
            try
            {
                client = await GuestAgentClient.ConnectAsync(socket, null, cancellationToken);
                await client.PingAsync(cancellationToken);
                return client;
            }
            catch (GuestAgentException) when (clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                if (client is not null)
                {
                    await client.DisposeAsync();
                }

                await Task.Delay(200, cancellationToken);
            }
        }
    }
}
