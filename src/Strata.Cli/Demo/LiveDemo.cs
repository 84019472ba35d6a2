using System.Diagnostics;
using System.Text.Json.Nodes;
using Strata.Daemon;
using Strata.Daemon.Control;
using Strata.Formats;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;

namespace Strata.Cli.Demo;

/// <summary>
/// `strata demo`: the whole workflow on local files — a disk served over NBD to a built-in guest that
/// never stops writing, a live snapshot checked to be frozen and consistent, a live merge checked to
/// lose nothing — printing each step with its timing.
/// </summary>
public sealed class LiveDemo(TextWriter output, string folder, long diskSize, int seed)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _failures;

    public async Task<int> RunAsync(CancellationToken cancellationToken = default)
    {
        string disk = Path.Combine(folder, "foo.img");
        string overlay = Path.Combine(folder, "tmp_disk.img");
        string nbdSocket = Path.Combine(folder, "nbd.sock");
        string qmpSocket = Path.Combine(folder, "qmp.sock");

        await Step($"strata img create -f raw foo.img {diskSize >> 20}M", async () =>
            await ImageCreator.CreateAsync(disk, ImageOpener.Raw, diskSize, null, null, null, cancellationToken));

        var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec(DriveSpec.HdaId, disk, ImageOpener.Raw)],
            NbdEndpoints = [NbdEndpoint.Unix(nbdSocket)],
            QmpEndpoints = [NbdEndpoint.Unix(qmpSocket)],
        });
        await Step("strata serve -hda foo.img (NBD and control sockets in the demo folder)", () => daemon.StartAsync(cancellationToken));
        await using (daemon)
        {
            await using var guest = await NbdClient.ConnectAsync(NbdEndpoint.Unix(nbdSocket), DriveSpec.HdaId, cancellationToken: cancellationToken);
            await using var qmp = await QmpClient.ConnectAsync(qmpSocket, cancellationToken);
            var writer = new GuestWriter(guest, diskSize, seed);
            using var stopWriter = new CancellationTokenSource();
            var writing = Task.Run(() => writer.RunAsync(long.MaxValue, stopWriter.Token), CancellationToken.None);
            await Step("the guest writes 64 KiB blocks, without pause from now on", () => Task.Delay(1000, cancellationToken));

            await Step("strata img create -f qcow2 -b foo.img tmp_disk.img", async () =>
                await ImageCreator.CreateAsync(overlay, ImageOpener.Qcow2Format, null, "foo.img", ImageOpener.Raw, null, cancellationToken));

            long begin = writer.Now;
            await Step("(strata) change -l ide0-hd0 file=tmp_disk.img   (live snapshot)", () => qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
            {
                ["device"] = DriveSpec.HdaId, ["snapshot-file"] = overlay, ["format"] = "qcow2", ["mode"] = "existing",
            }, cancellationToken));
            long end = writer.Now;
            long writesAtSnapshot = writer.Writes;

            byte[] frozen = [];
            await Step("foo.img is frozen: read it twice, 0.5 s apart, while the guest writes", async () =>
            {
                frozen = await File.ReadAllBytesAsync(disk, cancellationToken);
                await Task.Delay(500, cancellationToken);
                var again = await File.ReadAllBytesAsync(disk, cancellationToken);
                Check(frozen.AsSpan().SequenceEqual(again), "foo.img changed after the snapshot");
                Check(writer.Writes > writesAtSnapshot, "the guest made no progress after the snapshot");
            });
            await Step("foo.img is consistent: every block is one point in time", () =>
            {
                var bad = writer.InconsistentBlocks(frozen, begin, end);
                Check(bad.Count == 0, $"{bad.Count} blocks of the snapshot are not from the moment it was taken (first: block {bad.FirstOrDefault()})");
                return Task.CompletedTask;
            });

            await Step("(strata) merge_disk tmp_disk.img   (live merge while the guest writes)", async () =>
            {
                await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = DriveSpec.HdaId, ["job-id"] = "merge0" }, cancellationToken);
                await qmp.WaitForEventAsync("BLOCK_JOB_READY", TimeSpan.FromMinutes(5));
                await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "merge0" }, cancellationToken);
                var done = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", TimeSpan.FromMinutes(5));
                Check(done["data"]?["error"] is null, $"the merge failed: {done["data"]?["error"]}");
            });

            await stopWriter.CancelAsync();
            await writing;
            await guest.FlushAsync(cancellationToken);
            await Step($"the guest stops ({writer.Writes} writes) and flushes", () => Task.CompletedTask);

            await Step("the drive is back on foo.img, read-write, with no overlay", async () =>
            {
                var block = (await qmp.ExecuteAsync("query-block", null, cancellationToken))!.AsArray();
                var inserted = block[0]!["inserted"]!;
                Check(Path.GetFullPath(inserted["file"]!.GetValue<string>()) == disk, $"the drive is on {inserted["file"]}");
                Check(inserted["backing_file"] is null, "the drive still has a backing file");
                Check(!inserted["ro"]!.GetValue<bool>(), "the drive is read-only");
            });
            await Step("foo.img holds exactly what the guest wrote", async () =>
            {
                var image = await File.ReadAllBytesAsync(disk, cancellationToken);
                Check(image.AsSpan().SequenceEqual(writer.Model()), "foo.img differs from what the guest wrote");
            });
        }

        await Step("strata serve stops: images flushed and closed", () => Task.CompletedTask);
        output.WriteLine();
        output.WriteLine(_failures == 0
            ? $"demo: OK — every check passed in {_clock.Elapsed.TotalSeconds:0.0} s"
            : $"demo: FAILED — {_failures} check(s) failed");
        return _failures == 0 ? 0 : 1;
    }

    private async Task Step(string title, Func<Task> action)
    {
        var started = _clock.Elapsed;
        await action();
        var took = _clock.Elapsed - started;
        output.WriteLine($"[{started.TotalSeconds,6:0.000} s] {title}  ({took.TotalMilliseconds:0.0} ms)");
    }

    private void Check(bool condition, string failure)
    {
        if (!condition)
        {
            _failures++;
            output.WriteLine($"           FAILED: {failure}");
        }
    }
}
