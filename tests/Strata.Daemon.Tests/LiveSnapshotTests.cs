using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

public sealed class LiveSnapshotTests
{
    [Fact]
    public async Task AfterSnapshotTheOldImageNeverChangesAndTheGuestReadsTheModel()
    {
        const int seed = 401;
        await using var d = await LiveDaemon.StartAsync();
        await using var guest = await d.ConnectNbdAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await d.WriteRandomlyAsync(guest, seed, 100);
        await guest.FlushAsync();

        string overlay = d.Folder.File("tmp_disk.img");
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay, ["format"] = "qcow2",
        });
        byte[] frozen = (byte[])d.Model.Clone();
        Assert.Equal(frozen, await File.ReadAllBytesAsync(d.BaseImage));

        await d.WriteRandomlyAsync(guest, seed + 1, 200);
        await guest.FlushAsync();

        Assert.True(LiveDaemon.SameBytes(frozen, await File.ReadAllBytesAsync(d.BaseImage)), $"the snapshot changed (seed {seed})");
        Assert.True(LiveDaemon.SameBytes(d.Model, await d.ReadAllAsync(guest)), $"the guest does not read the model (seed {seed})");
        Processes.Run("qemu-img", "check", "-U", overlay).AssertSuccess();
        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(overlay, block[0]!["inserted"]!["file"]!.GetValue<string>());
        Assert.Equal(d.BaseImage, block[0]!["inserted"]!["backing_file"]!.GetValue<string>());
    }

    [Fact]
    public async Task SnapshotIntoAnExistingOverlayMadeByImgCreateWorks()
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        string overlay = d.Folder.File("tmp_disk.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "foo.img", "-F", "raw", overlay).AssertSuccess();
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay, ["mode"] = "existing",
        });
        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(overlay, block[0]!["inserted"]!["file"]!.GetValue<string>());
    }

    [Fact]
    public async Task ExistingOverlayOnAnotherBackingFileIsRefusedAndNothingChanges()
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        string other = d.Folder.File("other.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", other, "8M").AssertSuccess();
        string overlay = d.Folder.File("tmp_disk.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "other.img", "-F", "raw", overlay).AssertSuccess();
        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay, ["mode"] = "existing",
        }));
        Assert.Contains("backing file", e.Message);
        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(d.BaseImage, block[0]!["inserted"]!["file"]!.GetValue<string>());
    }

    [Fact]
    public async Task TransactionWithOneBadActionSwitchesNoDriveAndLeavesNoStrayFile()
    {
        await using var d = await LiveDaemon.StartAsync(8 << 20, "ide0-hd1");
        await using var qmp = await d.ConnectQmpAsync();
        string good = d.Folder.File("a.qcow2");
        var before = Directory.GetFiles(d.Folder.Path).Order().ToArray();
        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("transaction", new JsonObject
        {
            ["actions"] = new JsonArray(
                Action(LiveDaemon.DriveId, good),
                Action("ide0-hd1", d.Folder.File("no-such-dir/b.qcow2"))),
        }));
        Assert.Equal("GenericError", e.ErrorClass);
        Assert.Equal(before, Directory.GetFiles(d.Folder.Path).Order().ToArray());
        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.All(block, b => Assert.Null(b!["inserted"]!["backing_file"]));
    }

    [Fact]
    public async Task TransactionSwitchesEveryDrive()
    {
        await using var d = await LiveDaemon.StartAsync(8 << 20, "ide0-hd1");
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("transaction", new JsonObject
        {
            ["actions"] = new JsonArray(Action(LiveDaemon.DriveId, d.Folder.File("a.qcow2")), Action("ide0-hd1", d.Folder.File("b.qcow2"))),
        });
        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.All(block, b => Assert.NotNull(b!["inserted"]!["backing_file"]));
    }

    [Fact]
    public async Task SnapshotOfAnUnknownDeviceIsDeviceNotFound()
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = "nope", ["snapshot-file"] = d.Folder.File("x.qcow2"),
        }));
        Assert.Equal("DeviceNotFound", e.ErrorClass);
        Assert.False(File.Exists(d.Folder.File("x.qcow2")));
    }

    [Fact]
    public async Task AFailedFlushOfTheOldImageAfterTheSwitchKeepsTheOverlayLiveAndReportsIt()
    {
        const int seed = 411;
        await using var d = await LiveDaemon.StartAsync();
        await using var guest = await d.ConnectNbdAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await d.WriteRandomlyAsync(guest, seed, 50);

        // The drive's image, behind a node that refuses the snapshot's flush of it.
        var drive = d.Daemon.FindDrive(LiveDaemon.DriveId)!;
        var old = await FaultInjectingNode.WrapRootAsync(drive.Gate, writesBeforeCrash: 0);
        string overlay = d.Folder.File("tmp_disk.img");
        var reply = await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay });

        // The switch stands: the reply says which image is not yet on stable storage, and so does an event.
        var unflushed = Assert.Single(reply!["unflushed"]!.AsArray());
        Assert.Equal(LiveDaemon.DriveId, unflushed!["device"]!.GetValue<string>());
        Assert.Equal(d.BaseImage, unflushed["file"]!.GetValue<string>());
        var error = await qmp.WaitForEventAsync("BLOCK_IO_ERROR", TimeSpan.FromSeconds(60));
        Assert.Equal(LiveDaemon.DriveId, error["data"]!["device"]!.GetValue<string>());
        Assert.True(File.Exists(overlay), "the overlay the drive now writes to was deleted");
        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(overlay, block[0]!["inserted"]!["file"]!.GetValue<string>());

        // The guest writes to the overlay and reads what it wrote; its next flush flushes the old image too.
        await d.WriteRandomlyAsync(guest, seed + 1, 100);
        old.CrashAfter(long.MaxValue);
        long before = old.WritesSeen;
        await guest.FlushAsync();
        Assert.Equal(before + 1, old.WritesSeen);
        Assert.True(LiveDaemon.SameBytes(d.Model, await d.ReadAllAsync(guest)), $"the guest does not read the model (seed {seed})");
        Processes.Run("qemu-img", "check", "-U", overlay).AssertSuccess();
    }

    private static JsonObject Action(string device, string file) => new()
    {
        ["type"] = "blockdev-snapshot-sync",
        ["data"] = new JsonObject { ["device"] = device, ["snapshot-file"] = file, ["format"] = "qcow2" },
    };
}
