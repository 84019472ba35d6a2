using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>block-export-add/-del, query-block-exports and the nbd-server-* commands: their rules, modes and errors (docs/backup-pull.md).</summary>
public sealed class BlockExportCommandTests
{
    private const long Size = 4 << 20;

    [Fact]
    public async Task AnExportedLayerRefusesAMergeAndItsBitmapRefusesRemoveAndEnableUntilTheExportIsDeleted()
    {
        await using var d = await FrozenAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await PullBackup.ExportAsync(qmp, "pull", d.BaseImage, "t0");

        var merge = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId }));
        Assert.Contains("in use by export 'pull'", merge.Message);
        foreach (var command in new[] { "block-dirty-bitmap-remove", "block-dirty-bitmap-enable", "block-dirty-bitmap-clear" })
        {
            var refused = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync(command, Bitmap("t0")));
            Assert.Equal("Bitmap 't0' is currently in use by another operation and cannot be used", refused.Message);
        }

        var busy = (await qmp.ExecuteAsync("query-block"))![0]!["inserted"]!["dirty-bitmaps"]!.AsArray().First(b => b!["name"]!.GetValue<string>() == "t0");
        Assert.True(busy!["busy"]!.GetValue<bool>());

        await PullBackup.DeleteExportAsync(qmp, "pull");
        await qmp.ExecuteAsync("block-dirty-bitmap-remove", Bitmap("t0"));
        await PullBackup.MergeAsync(qmp);
    }

    [Fact]
    public async Task SafeDeleteIsRefusedWhileAClientIsConnectedAndHardDeleteDisconnectsIt()
    {
        await using var d = await FrozenAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await PullBackup.ExportAsync(qmp, "pull", d.BaseImage, "t0");
        await using var reader = await NbdClient.ConnectAsync(NbdEndpoint.Unix(d.NbdSocket), "pull");
        await reader.ReadAsync(0, new byte[4096]);

        var safe = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("block-export-del", new JsonObject { ["id"] = "pull" }));
        Assert.StartsWith("export 'pull' still in use", safe.Message);
        Assert.False(Exports(await qmp.ExecuteAsync("query-block-exports"))["pull"]);

        await PullBackup.DeleteExportAsync(qmp, "pull", "hard");
        await Assert.ThrowsAnyAsync<Exception>(() => reader.ReadAsync(0, new byte[4096]));
        Assert.False(Exports(await qmp.ExecuteAsync("query-block-exports")).ContainsKey("pull"));
        var gone = await Processes.RunAsync("nbdinfo", PullBackup.Uri(d, "pull"));
        Assert.True(gone.ExitCode != 0, gone.ToString());
    }

    [Fact]
    public async Task QueryBlockExportsListsTheDrivesOwnExportWhichCannotBeDeleted()
    {
        await using var d = await LiveDaemon.StartAsync(Size);
        await using var qmp = await d.ConnectQmpAsync();
        var exports = (await qmp.ExecuteAsync("query-block-exports"))!.AsArray();
        var own = Assert.Single(exports)!;
        Assert.Equal(LiveDaemon.DriveId, own["id"]!.GetValue<string>());
        Assert.Equal("nbd", own["type"]!.GetValue<string>());
        await Error(qmp, "block-export-del", new JsonObject { ["id"] = LiveDaemon.DriveId }, "cannot be removed");
    }

    [Fact]
    public async Task BadArgumentsGetQemusErrorsAndChangeNothing()
    {
        await using var d = await FrozenAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await Error(qmp, "block-export-add", Add("e", "nowhere.img"), "Cannot find device='nowhere.img' nor node-name='nowhere.img'");
        await Error(qmp, "block-export-add", Add("e", d.BaseImage, "nope"), "Bitmap 'nope' is not found");
        await Error(qmp, "block-export-add", Add("e", d.BaseImage, "t1"), "Enabled bitmap 't1' incompatible with readonly export");
        await Error(qmp, "block-export-add", Add("e", LiveDaemon.DriveId), "is the active image of drive");
        await Error(qmp, "block-export-add", Add("e", d.BaseImage, with: ("writable", true)), "can only be exported read-only");
        await Error(qmp, "block-export-add", Add("e", d.BaseImage, with: ("type", "fuse")), "Parameter 'type' does not accept value 'fuse'");
        await Error(qmp, "block-export-add", Add("e", d.BaseImage, with: ("iothread", "x")), "Parameter 'iothread' is unexpected");
        await Error(qmp, "block-export-add", new JsonObject { ["type"] = "nbd", ["node-name"] = d.BaseImage }, "Parameter 'id' is missing");
        await Error(qmp, "block-export-add", Add(LiveDaemon.DriveId, d.BaseImage), $"Block export id '{LiveDaemon.DriveId}' is already in use");
        await Error(qmp, "block-export-add", Add("e", d.BaseImage, with: ("name", LiveDaemon.DriveId)), $"NBD server already has export named '{LiveDaemon.DriveId}'");

        await qmp.ExecuteAsync("block-export-add", Add("e", d.BaseImage, "t0"));
        await Error(qmp, "block-export-add", Add("e", d.BaseImage), "Block export id 'e' is already in use");
        await Error(qmp, "block-export-add", Add("f", d.BaseImage, "t0", with: ("name", "f")), "Bitmap 't0' is currently in use by another operation and cannot be used");
        await Error(qmp, "block-export-del", new JsonObject { ["id"] = "zz" }, "Export 'zz' is not found");
        await Error(qmp, "block-export-del", new JsonObject { ["id"] = "e", ["mode"] = "soft" }, "Parameter 'mode' does not accept value 'soft'");
        Assert.Equal([LiveDaemon.DriveId, "e"], Exports(await qmp.ExecuteAsync("query-block-exports")).Keys);
        await Error(qmp, "nbd-server-start", new JsonObject { ["addr"] = Unix(d.Folder.File("second.sock")) }, "NBD server already running");
    }

    [Fact]
    public async Task TheNbdServerStartsStopsAndServesExportsAddedTheOldWay()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { NbdEndpoints = [] }, Size);
        await using var qmp = await d.ConnectQmpAsync();
        await Error(qmp, "nbd-server-add", new JsonObject { ["device"] = d.BaseImage }, "NBD server not running");
        await Error(qmp, "nbd-server-stop", null, "NBD server not running");

        await qmp.ExecuteAsync("nbd-server-start", new JsonObject { ["addr"] = new JsonObject { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = d.NbdSocket } } });
        await qmp.ExecuteAsync("block-dirty-bitmap-add", Bitmap("t0"));
        await using (var guest = await d.ConnectNbdAsync())
        {
            await guest.WriteAsync(65536, new byte[512]);
        }

        await PullBackup.FreezeAsync(qmp, "t1", "t0", d.Folder.File("ov1.qcow2"));
        await qmp.ExecuteAsync("nbd-server-add", new JsonObject { ["device"] = d.BaseImage, ["name"] = "old", ["bitmap"] = "t0" });
        Assert.Equal(["0 65536 0", "65536 65536 1"], (await Processes.OkAsync("nbdinfo", "--map=qemu:dirty-bitmap:t0", PullBackup.Uri(d, "old")))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Take(2).Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(3))));
        await qmp.ExecuteAsync("nbd-server-remove", new JsonObject { ["name"] = "old" });
        await qmp.WaitForEventAsync("BLOCK_EXPORT_DELETED", PullBackup.EventTimeout);

        await PullBackup.ExportAsync(qmp, "again", d.BaseImage, "t0");
        await using var reader = await NbdClient.ConnectAsync(NbdEndpoint.Unix(d.NbdSocket), "again");
        await qmp.ExecuteAsync("nbd-server-stop");
        await qmp.WaitForEventAsync("BLOCK_EXPORT_DELETED", PullBackup.EventTimeout, e => e["data"]!["id"]!.GetValue<string>() == "again");
        Assert.False(File.Exists(d.NbdSocket));
        Assert.Equal([LiveDaemon.DriveId], Exports(await qmp.ExecuteAsync("query-block-exports")).Keys);

        // The bitmap is free again, and a new server offers the drive's own export.
        await qmp.ExecuteAsync("nbd-server-start", new JsonObject { ["addr"] = Unix(d.NbdSocket) });
        await using var again = await d.ConnectNbdAsync();
        await again.ReadAsync(0, new byte[512]);
        await qmp.ExecuteAsync("block-dirty-bitmap-remove", Bitmap("t0"));
    }

    [Fact]
    public async Task AClientThatGoesAwayMidReadLeavesTheDaemonAndTheViewServing()
    {
        await using var d = await FrozenAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await PullBackup.ExportAsync(qmp, "pull", d.BaseImage, "t0");
        var reader = await NbdClient.ConnectAsync(NbdEndpoint.Unix(d.NbdSocket), "pull");
        var reads = Enumerable.Range(0, 4).Select(i => reader.ReadAsync(i * (1 << 20), new byte[1 << 20])).ToList();
        await reader.DisposeAsync();
        await Task.WhenAll(reads.Select(r => r.ContinueWith(_ => { }, TaskScheduler.Default)));

        string copy = d.Folder.File("copy.raw");
        await Processes.OkAsync("nbdcopy", PullBackup.Uri(d, "pull"), copy);
        PullBackup.AssertSameImage(d.BaseImage, copy, seed: 0);
        await PullBackup.DeleteExportAsync(qmp, "pull");
    }

    /// <summary>A daemon whose drive tracked a write in t0 and then switched to an overlay: foo.img is frozen, t0 disabled, t1 recording.</summary>
    private static async Task<LiveDaemon> FrozenAsync()
    {
        var d = await LiveDaemon.StartAsync(Size);
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("block-dirty-bitmap-add", Bitmap("t0"));
        await using (var guest = await d.ConnectNbdAsync())
        {
            await guest.WriteAsync(0, Enumerable.Repeat((byte)0x5a, 8192).ToArray());
        }

        await PullBackup.FreezeAsync(qmp, "t1", "t0", d.Folder.File("ov1.qcow2"));
        return d;
    }

    private static JsonObject Bitmap(string name) => new() { ["node"] = LiveDaemon.DriveId, ["name"] = name };

    private static JsonObject Unix(string path) => new() { ["type"] = "unix", ["path"] = path };

    /// <summary>block-export-add's arguments (the NBD name is the id), with one more member when <paramref name="with"/> names it.</summary>
    private static JsonObject Add(string id, string node, string? bitmap = null, (string Name, JsonNode Value)? with = null)
    {
        var args = new JsonObject { ["type"] = "nbd", ["id"] = id, ["node-name"] = node, ["name"] = id };
        if (bitmap is not null)
        {
            args["bitmaps"] = new JsonArray(bitmap);
        }

        if (with is var (name, value))
        {
            args[name] = value;
        }

        return args;
    }

    private static async Task Error(QmpClient qmp, string command, JsonObject? args, string expected)
    {
        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync(command, args));
        Assert.Contains(expected, e.Message);
    }

    /// <summary>query-block-exports as id → shutting-down.</summary>
    private static Dictionary<string, bool> Exports(JsonNode? reply) =>
        reply!.AsArray().ToDictionary(e => e!["id"]!.GetValue<string>(), e => e!["shutting-down"]!.GetValue<bool>());
}
