using System.Diagnostics;
using System.Text.Json.Nodes;
using Strata.Daemon;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;

namespace Strata.Bench;

/// <summary>
/// The pause a live snapshot imposes on the guest: 32 requests of 4 KiB random writes always in
/// flight over NBD, 20 snapshots taken while they run, and for each snapshot the longest latency of
/// any request that was in flight during it — against the longest latency outside snapshots.
/// </summary>
public static class SnapshotPauseBench
{
    private const int Depth = 32;
    private const int Snapshots = 20;
    private const long DiskSize = 256L << 20;

    public static async Task<int> RunAsync(string[] args)
    {
        string dir = args.Length > 1 && args[0] == "--dir" ? args[1] : "/dev/shm";
        string folder = Path.Combine(dir, $"strata-pause-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        try
        {
            string disk = Path.Combine(folder, "foo.img");
            using (var f = File.Create(disk))
            {
                f.SetLength(DiskSize);
            }

            await using var daemon = new StorageDaemon(new DaemonOptions
            {
                Drives = [new DriveSpec(DriveSpec.HdaId, disk, "raw")],
                NbdEndpoints = [NbdEndpoint.Unix(Path.Combine(folder, "nbd.sock"))],
                QmpEndpoints = [NbdEndpoint.Unix(Path.Combine(folder, "qmp.sock"))],
            });
            await daemon.StartAsync();
            await using var guest = await NbdClient.ConnectAsync(NbdEndpoint.Unix(Path.Combine(folder, "nbd.sock")), DriveSpec.HdaId);
            await using var qmp = await QmpClient.ConnectAsync(Path.Combine(folder, "qmp.sock"));

            var clock = Stopwatch.StartNew();
            var requests = new List<(long Start, long End)>[Depth];
            using var stop = new CancellationTokenSource();
            var writers = Enumerable.Range(0, Depth).Select(i => Task.Run(async () =>
            {
                var random = new Random(i);
                var data = new byte[4096];
                random.NextBytes(data);
                var list = requests[i] = new List<(long, long)>(1 << 16);
                while (!stop.IsCancellationRequested)
                {
                    long start = clock.ElapsedTicks;
                    await guest.WriteAsync(random.NextInt64(DiskSize / 4096) * 4096, data);
                    list.Add((start, clock.ElapsedTicks));
                }
            })).ToArray();

            await Task.Delay(1000);
            var windows = new List<(long Start, long End)>();
            for (int i = 0; i < Snapshots; i++)
            {
                long start = clock.ElapsedTicks;
                await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
                {
                    ["device"] = DriveSpec.HdaId, ["snapshot-file"] = Path.Combine(folder, $"snap{i}.qcow2"),
                });
                windows.Add((start, clock.ElapsedTicks));
                await Task.Delay(200);
            }

            await stop.CancelAsync();
            await Task.WhenAll(writers);

            var all = requests.SelectMany(r => r).ToList();
            double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
            var perSnapshot = windows
                .Select(w => all.Where(r => r.Start < w.End && r.End > w.Start).Select(r => r.End - r.Start).DefaultIfEmpty(0).Max())
                .Select(Ms).Order().ToList();
            var outside = all.Where(r => !windows.Any(w => r.Start < w.End && r.End > w.Start)).Select(r => Ms(r.End - r.Start)).Order().ToList();
            var commandTimes = windows.Select(w => Ms(w.End - w.Start)).Order().ToList();

            Console.WriteLine($"guest: {Depth} x 4 KiB random writes in flight over NBD (unix socket), {all.Count} requests; {Snapshots} snapshots; images in {dir}");
            Console.WriteLine();
            Console.WriteLine("| measure | p50 | p99 | max |");
            Console.WriteLine("| --- | ---: | ---: | ---: |");
            Console.WriteLine($"| longest guest request overlapping a snapshot (ms) | {Pct(perSnapshot, 50):0.00} | {Pct(perSnapshot, 99):0.00} | {perSnapshot[^1]:0.00} |");
            Console.WriteLine($"| blockdev-snapshot-sync command, QMP round trip (ms) | {Pct(commandTimes, 50):0.00} | {Pct(commandTimes, 99):0.00} | {commandTimes[^1]:0.00} |");
            Console.WriteLine($"| guest request latency outside snapshots (ms) | {Pct(outside, 50):0.00} | {Pct(outside, 99):0.00} | {outside[^1]:0.00} |");
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static double Pct(List<double> sorted, int p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p / 100.0 * sorted.Count) - 1)];
}
