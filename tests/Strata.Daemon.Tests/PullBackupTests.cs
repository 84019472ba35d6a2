using System.Text.Json.Nodes;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// Pull backups end to end (docs/backup-pull.md): a frozen layer exported with the bitmap of what
/// changed in it, read by nbdcopy, nbdinfo and python3-libnbd while a seeded guest keeps writing.
/// </summary>
public sealed class PullBackupTests
{
    [Fact]
    public async Task AFullThenAnIncrementalPullUnderAGuestWriterEqualTheFrozenImages()
    {
        const int seed = 1301;
        await using var d = await LiveDaemon.StartAsync(8 << 20);
        await using var qmp = await d.ConnectQmpAsync();
        await using var guest = await d.ConnectNbdAsync();
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject
        {
            ["node"] = LiveDaemon.DriveId, ["name"] = "t0", ["granularity"] = PullBackup.Granularity,
        });

        // Round 1: t0 holds every write since it was added; the full backup reads the whole view.
        var beforeFirst = await PullBackup.WriteAsync(d, guest, seed, 150);
        await PullBackup.FreezeAsync(qmp, "t1", "t0", d.Folder.File("ov1.qcow2"));
        string point1 = PullBackup.SaveModel(d, d.Folder.File("point1.raw"));
        await PullBackup.ExportAsync(qmp, "pull0", d.BaseImage, "t0");
        string full = d.Folder.File("full.raw");
        var duringFirst = PullBackup.WriteAsync(d, guest, seed + 1, 150);
        await Processes.OkAsync("nbdcopy", PullBackup.Uri(d, "pull0"), full);
        var t0 = await PullBackup.DirtyGranulesAsync(d, "pull0", "t0");
        var betweenPoints = await duringFirst;
        PullBackup.AssertSameImage(point1, full, seed);
        Assert.Equal(PullBackup.Granules(beforeFirst), t0);

        await PullBackup.DeleteExportAsync(qmp, "pull0");
        await qmp.ExecuteAsync("block-dirty-bitmap-remove", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t0" });
        await PullBackup.MergeAsync(qmp);

        // Round 2: t1 holds exactly the writes after point 1; only its dirty extents are copied.
        await PullBackup.FreezeAsync(qmp, "t2", "t1", d.Folder.File("ov2.qcow2"));
        string point2 = PullBackup.SaveModel(d, d.Folder.File("point2.raw"));
        await PullBackup.ExportAsync(qmp, "pull1", d.BaseImage, "t1");
        string incremental = d.Folder.File("incremental.raw");
        File.Copy(full, incremental);
        var duringSecond = PullBackup.WriteAsync(d, guest, seed + 2, 150);
        long copied = await PullBackup.CopyDirtyAsync(d, "pull1", "t1", incremental);
        var t1 = await PullBackup.DirtyGranulesAsync(d, "pull1", "t1");
        await duringSecond;
        PullBackup.AssertSameImage(point2, incremental, seed);
        Assert.Equal(PullBackup.Granules(betweenPoints), t1);
        Assert.Equal(t1.Count * PullBackup.Granularity, copied);
        await PullBackup.DeleteExportAsync(qmp, "pull1");
    }

    [Fact]
    public async Task TheViewOffersTheFrozenChainsAllocationAndRefusesWrites()
    {
        await using var d = await LiveDaemon.StartAsync(8 << 20);
        await using var qmp = await d.ConnectQmpAsync();
        await using var guest = await d.ConnectNbdAsync();
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "t0" });
        await guest.WriteAsync(1 << 20, new byte[65536].Select(_ => (byte)7).ToArray());
        string ov1 = d.Folder.File("ov1.qcow2");
        await PullBackup.FreezeAsync(qmp, "t1", "t0", ov1);
        await guest.WriteAsync(2 << 20, new byte[65536].Select(_ => (byte)9).ToArray());
        await PullBackup.FreezeAsync(qmp, "t2", "t1", d.Folder.File("ov2.qcow2"));

        // ov1 is frozen now: its view reads ov1 over foo.img, the data ov1 holds at depth 1, foo.img's at depth 2.
        await PullBackup.ExportAsync(qmp, "mid", ov1, "t1");
        string depth = await Processes.OkAsync("nbdinfo", "--map=qemu:allocation-depth", PullBackup.Uri(d, "mid"));
        Assert.Contains(depth.Split('\n'), l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [var o, _, "1", ..] && o == (2 << 20).ToString());
        string list = await Processes.OkAsync("nbdinfo", "--json", PullBackup.Uri(d, "mid"));
        var info = JsonNode.Parse(list)!["exports"]![0]!;
        Assert.True(info["is_read_only"]!.GetValue<bool>());
        Assert.Contains("qemu:dirty-bitmap:t1", info["contexts"]!.AsArray().Select(c => c!.GetValue<string>()));

        var write = await Processes.RunAsync("/usr/bin/nbdsh", "-u", PullBackup.Uri(d, "mid"), "-c", "h.pwrite(b'x' * 512, 0)");
        Assert.NotEqual(0, write.ExitCode);
    }
}
