using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Daemon.Tests;

public sealed class BackupPushTests(ITestOutputHelper output)
{
    private const long Size = 8 << 20;
    private static readonly TimeSpan EventTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AnIncrementalChainUnderAGuestWriterRestoresEachPointWithQemuImgConvert()
    {
        int seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        await using var d = await LiveDaemon.StartAsync(Size);
        await using var qmp = await d.ConnectQmpAsync();
        await using var guest = await d.ConnectNbdAsync();
        await d.WriteRandomlyAsync(guest, seed, 60);
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0" });

        string? previous = null;
        for (int round = 0; round < 4; round++)
        {
            string target = d.Folder.File($"backup{round}.qcow2");
            var arguments = new JsonObject
            {
                ["device"] = LiveDaemon.DriveId, ["job-id"] = $"r{round}", ["target"] = target, ["format"] = "qcow2",
                ["speed"] = 16 << 20,
            };
            if (previous is null)
            {
                arguments["sync"] = "full";
                arguments["bitmap"] = "b0";
                arguments["bitmap-mode"] = "on-success";
            }
            else
            {
                Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", previous, "-F", "qcow2", target, Size.ToString()).AssertSuccess();
                arguments["sync"] = "incremental";
                arguments["bitmap"] = "b0";
                arguments["mode"] = "existing";
            }

            byte[] atStart;
            lock (d.Model)
            {
                atStart = (byte[])d.Model.Clone();
            }

            await qmp.ExecuteAsync("drive-backup", arguments);

            // The guest writes while the job copies: copy-before-write keeps the target at the job's start.
            await d.WriteRandomlyAsync(guest, seed + round + 1, 80);
            var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout, e => e["data"]!["device"]!.GetValue<string>() == $"r{round}");
            Assert.Null(completed["data"]!["error"]);

            Processes.Run("qemu-img", "check", target).AssertSuccess();
            string restored = d.Folder.File($"restored{round}.raw");
            Processes.Run("qemu-img", "convert", "-O", "raw", target, restored).AssertSuccess();
            Assert.True(LiveDaemon.SameBytes(atStart, File.ReadAllBytes(restored)), $"seed {seed}: round {round} does not restore the disk at its job's start");
            previous = target;
        }
    }

    [Fact]
    public async Task BitmapModeNeverKeepsTheBitmapAndBlockdevBackupWritesANodeFromBlockdevAdd()
    {
        await using var d = await LiveDaemon.StartAsync(Size);
        await using var qmp = await d.ConnectQmpAsync();
        await using var guest = await d.ConnectNbdAsync();
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0", ["granularity"] = 65536 });
        await d.WriteRandomlyAsync(guest, 5, 20);
        string before = await ShaAsync(qmp);
        string target = d.Folder.File("t.qcow2");
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", target, Size.ToString()).AssertSuccess();
        await qmp.ExecuteAsync("blockdev-add", new JsonObject { ["driver"] = "file", ["node-name"] = "tf", ["filename"] = target });
        await qmp.ExecuteAsync("blockdev-add", new JsonObject { ["driver"] = "qcow2", ["node-name"] = "t", ["file"] = "tf" });
        var busy = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = "tf" }));
        Assert.Contains("busy", busy.Message);

        await qmp.ExecuteAsync("blockdev-backup", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["target"] = "t", ["sync"] = "bitmap", ["bitmap"] = "b0", ["bitmap-mode"] = "never", ["job-id"] = "j",
        });
        var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
        Assert.Null(completed["data"]!["error"]);
        Assert.Equal(before, await ShaAsync(qmp));

        await qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = "t" });
        await qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = "tf" });
        string restored = d.Folder.File("r.raw");
        Processes.Run("qemu-img", "convert", "-O", "raw", target, restored).AssertSuccess();
        var all = File.ReadAllBytes(restored);
        foreach (var (offset, length) in DirtyRunsOf(d.Model))
        {
            Assert.True(d.Model.AsSpan((int)offset, (int)length).SequenceEqual(all.AsSpan((int)offset, (int)length)), $"the dirty run at {offset} was not copied");
        }
    }

    [Theory]
    [InlineData("incremental", null, "bitmap", "Parameter 'bitmap'")]
    [InlineData("incremental", "always", "b0", "must be 'on-success'")]
    [InlineData("full", null, "b0", "must be given")]
    [InlineData("full", "never", "b0", "no meaningful effect")]
    [InlineData("sideways", null, null, "does not accept value 'sideways'")]
    public async Task BadSyncAndBitmapCombinationsAreRefusedInOneLineAndLeaveNoFile(string sync, string? mode, string? bitmap, string message)
    {
        await using var d = await LiveDaemon.StartAsync(Size);
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0" });
        string target = d.Folder.File("t.qcow2");
        var arguments = new JsonObject { ["device"] = LiveDaemon.DriveId, ["target"] = target, ["sync"] = sync, ["format"] = "qcow2" };
        if (mode is not null)
        {
            arguments["bitmap-mode"] = mode;
        }

        if (bitmap is not null && bitmap != "bitmap")
        {
            arguments["bitmap"] = bitmap;
        }

        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("drive-backup", arguments));
        Assert.Contains(bitmap == "bitmap" ? "need a bitmap" : message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(File.Exists(target));
    }

    [Fact]
    public async Task AnIncrementalBackupGivesTheSameGuestContentAsQemuStorageDaemonsOnACopyOfTheSameImageAndBitmap()
    {
        using var folder = new TempFolder();
        string full = folder.File("full.qcow2"), image = folder.File("disk.qcow2"), copy = folder.File("copy.qcow2");
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", image, Size.ToString()).AssertSuccess();
        QemuIo.Ok(image, "qcow2", "write -P 0x11 0 8M");
        Processes.Run("qemu-img", "convert", "-O", "qcow2", image, full).AssertSuccess();
        Processes.Run("qemu-img", "bitmap", "--add", image, "b0").AssertSuccess();

        // qemu-io loads the enabled persistent bitmap and marks its writes in it.
        QemuIo.Ok(image, "qcow2", "write -P 0x22 100k 300k", "write -z 3M 1M", "write -P 0x33 7M 4k");
        File.Copy(image, copy);
        string strataTarget = folder.File("strata.qcow2"), qemuTarget = folder.File("qemu.qcow2");
        foreach (var target in new[] { strataTarget, qemuTarget })
        {
            Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", full, "-F", "qcow2", target, Size.ToString()).AssertSuccess();
        }

        var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec("d0", image, "qcow2")],
            QmpEndpoints = [Strata.Nbd.Transport.NbdEndpoint.Unix(folder.File("qmp.sock"))],
        });
        await daemon.StartAsync();
        await using (daemon)
        {
            await using var qmp = await QmpClient.ConnectAsync(folder.File("qmp.sock"));
            await qmp.ExecuteAsync("drive-backup", new JsonObject
            {
                ["device"] = "d0", ["target"] = strataTarget, ["format"] = "qcow2", ["mode"] = "existing", ["sync"] = "incremental", ["bitmap"] = "b0",
            });
            var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
            Assert.Null(completed["data"]!["error"]);
        }

        string socket = folder.File("q.sock");
        await using (var qsd = await Qsd.StartAsync(socket, socket + ".qmp",
        [
            "--blockdev", $"driver=file,node-name=f0,filename={copy}",
            "--blockdev", "driver=qcow2,node-name=src,file=f0",
            "--blockdev", $"driver=file,node-name=f1,filename={qemuTarget}",
            "--blockdev", "driver=qcow2,node-name=tgt,file=f1",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
        ]))
        {
            await using var qmp = await qsd.ConnectQmpAsync();
            await qmp.ExecuteAsync("blockdev-backup", new JsonObject
            {
                ["device"] = "src", ["target"] = "tgt", ["sync"] = "incremental", ["bitmap"] = "b0", ["job-id"] = "j",
            });
            var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
            Assert.Null(completed["data"]!["error"]);
            // Closed before the comparison: QEMU writes the target's metadata back when it closes it.
            await qmp.ExecuteAsync("blockdev-del", new JsonObject { ["node-name"] = "tgt" });
        }

        Processes.Run("qemu-img", "check", strataTarget).AssertSuccess();
        Processes.Run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", strataTarget, qemuTarget).AssertSuccess();
        Processes.Run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", strataTarget, image).AssertSuccess();
    }

    private static async Task<string> ShaAsync(QmpClient qmp) =>
        (await qmp.ExecuteAsync("x-debug-block-dirty-bitmap-sha256", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0" }))!["sha256"]!.GetValue<string>();

    /// <summary>The runs of non-zero bytes of <paramref name="model"/>, 64 KiB aligned (what the guest wrote, at the bitmap's granularity).</summary>
    private static IEnumerable<(long Offset, long Length)> DirtyRunsOf(byte[] model)
    {
        const int Granule = 64 << 10;
        for (int at = 0; at < model.Length; at += Granule)
        {
            if (model.AsSpan(at, Granule).ContainsAnyExcept((byte)0))
            {
                yield return (at, Granule);
            }
        }
    }
}
