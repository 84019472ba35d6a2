using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

public sealed class LiveMergeTests
{
    private static readonly TimeSpan EventTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ActiveMergeUnderContinuousWritesConvergesAndLeavesTheBaseEqualToTheModel()
    {
        const int seed = 501;
        await using var d = await LiveDaemon.StartAsync();
        await using var guest = await d.ConnectNbdAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await d.WriteRandomlyAsync(guest, seed, 50);
        string overlay = d.Folder.File("tmp_disk.img");
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay });
        await d.WriteRandomlyAsync(guest, seed + 1, 300);

        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() => d.WriteRandomlyAsync(guest, seed + 2, 1_000_000, stop: stop.Token));
        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "merge0" });
        await qmp.WaitForEventAsync("BLOCK_JOB_READY", EventTimeout);
        await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "merge0" });
        var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
        Assert.Null(completed["data"]!["error"]);
        await Task.Delay(20);
        await stop.CancelAsync();
        int writes = await writer;
        await guest.FlushAsync();

        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(d.BaseImage, block[0]!["inserted"]!["file"]!.GetValue<string>());
        Assert.Null(block[0]!["inserted"]!["backing_file"]);
        Assert.Empty((await qmp.ExecuteAsync("query-jobs"))!.AsArray());
        Assert.True(LiveDaemon.SameBytes(d.Model, await File.ReadAllBytesAsync(d.BaseImage)),
            $"the base differs from the model after the merge (seed {seed}, {writes} writes during it)");
        Assert.True(LiveDaemon.SameBytes(d.Model, await d.ReadAllAsync(guest)), $"the guest does not read the model (seed {seed})");
    }

    [Fact]
    public async Task CancelledMergeLeavesTheDriveOnTheOverlayAndLosesNothing()
    {
        const int seed = 502;
        await using var d = await LiveDaemon.StartAsync();
        await using var guest = await d.ConnectNbdAsync();
        await using var qmp = await d.ConnectQmpAsync();
        string overlay = d.Folder.File("tmp_disk.img");
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay });
        await d.WriteRandomlyAsync(guest, seed, 300);
        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "m", ["speed"] = 1 << 20 });
        await d.WriteRandomlyAsync(guest, seed + 1, 50);
        await qmp.ExecuteAsync("job-cancel", new JsonObject { ["id"] = "m" });
        await qmp.WaitForEventAsync("BLOCK_JOB_CANCELLED", EventTimeout);
        await guest.FlushAsync();

        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(overlay, block[0]!["inserted"]!["file"]!.GetValue<string>());
        Assert.True(LiveDaemon.SameBytes(d.Model, await d.ReadAllAsync(guest)), $"the guest does not read the model (seed {seed})");
        Processes.Run("qemu-img", "check", "-U", overlay).AssertSuccess();
    }

    [Fact]
    public async Task MergeOfAMiddleLayerRelinksTheTopToTheBase()
    {
        const int seed = 503;
        await using var d = await LiveDaemon.StartAsync();
        await using var guest = await d.ConnectNbdAsync();
        await using var qmp = await d.ConnectQmpAsync();
        string mid = d.Folder.File("mid.qcow2");
        string top = d.Folder.File("top.qcow2");
        await d.WriteRandomlyAsync(guest, seed, 50);
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = mid });
        await d.WriteRandomlyAsync(guest, seed + 1, 100);
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = top });
        await d.WriteRandomlyAsync(guest, seed + 2, 100);

        await qmp.ExecuteAsync("block-commit", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["job-id"] = "m", ["top"] = mid, ["base"] = d.BaseImage,
        });
        var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
        Assert.Null(completed["data"]!["error"]);
        await guest.FlushAsync();

        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(top, block[0]!["inserted"]!["file"]!.GetValue<string>());
        Assert.Equal(d.BaseImage, block[0]!["inserted"]!["backing_file"]!.GetValue<string>());
        Assert.True(LiveDaemon.SameBytes(d.Model, await d.ReadAllAsync(guest)), $"the guest does not read the model (seed {seed})");
        var info = Processes.Run("qemu-img", "info", "-U", "--output=json", top).AssertSuccess();
        Assert.Contains("foo.img", info.Stdout);
        Processes.Run("qemu-img", "check", "-U", top).AssertSuccess();
    }

    [Theory]
    [InlineData("report")]
    [InlineData("stop")]
    public async Task AMergeThatCannotReadItsTopRaisesBlockJobErrorAndKeepsTheDriveOnTheOverlay(string onError)
    {
        // An overlay whose second data cluster was cut off its file: reading it fails.
        using var folder = new TempFolder();
        string baseImage = folder.File("base.raw");
        string overlay = folder.File("top.qcow2");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", baseImage, "4M").AssertSuccess();
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", baseImage, "-F", "raw", overlay).AssertSuccess();
        Processes.Run("qemu-io", "-f", "qcow2", overlay, "-c", "write -P 5 1M 64k", "-c", "write -P 6 2M 64k").AssertSuccess();
        using (var file = new FileStream(overlay, FileMode.Open))
        {
            file.SetLength(file.Length - (64 << 10));
        }

        await using var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec(LiveDaemon.DriveId, overlay, "qcow2")],
            NbdEndpoints = [NbdEndpoint.Unix(folder.File("nbd.sock"))],
            QmpEndpoints = [NbdEndpoint.Unix(folder.File("qmp.sock"))],
        });
        await daemon.StartAsync();
        await using var qmp = await QmpClient.ConnectAsync(folder.File("qmp.sock"));
        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "merge0", ["on-error"] = onError });

        var error = await qmp.WaitForEventAsync("BLOCK_JOB_ERROR", EventTimeout);
        Assert.Equal("merge0", error["data"]!["device"]!.GetValue<string>());
        Assert.Equal("read", error["data"]!["operation"]!.GetValue<string>());
        Assert.Equal(onError, error["data"]!["action"]!.GetValue<string>());
        if (onError == "stop")
        {
            await qmp.WaitForEventAsync("JOB_STATUS_CHANGE", EventTimeout, e => e["data"]!["status"]!.GetValue<string>() == "paused");
            var job = Assert.Single((await qmp.ExecuteAsync("query-block-jobs"))!.AsArray());
            Assert.Equal("failed", job!["io-status"]!.GetValue<string>());
            Assert.True(job["paused"]!.GetValue<bool>());
            await qmp.ExecuteAsync("job-cancel", new JsonObject { ["id"] = "merge0" });
            await qmp.WaitForEventAsync("BLOCK_JOB_CANCELLED", EventTimeout);
        }
        else
        {
            var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
            Assert.NotNull(completed["data"]!["error"]);
        }

        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(overlay, block[0]!["inserted"]!["file"]!.GetValue<string>());
        Assert.Empty((await qmp.ExecuteAsync("query-jobs"))!.AsArray());
    }

    [Theory]
    [InlineData("ignore", "loses data")]
    [InlineData("sometimes", "Invalid parameter 'on-error'")]
    public async Task UnsupportedOnErrorPoliciesAreRefused(string onError, string message)
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("top.qcow2") });
        var e = await Assert.ThrowsAsync<Control.QmpException>(() => qmp.ExecuteAsync("block-commit",
            new JsonObject { ["device"] = LiveDaemon.DriveId, ["on-error"] = onError }));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Empty((await qmp.ExecuteAsync("query-jobs"))!.AsArray());
    }

    [Fact]
    public async Task AChainOfFourIsTakenApartOneMergeAtATimeWhileTheGuestReadsTheModel()
    {
        const int seed = 505;
        await using var d = await LiveDaemon.StartAsync();
        await using var guest = await d.ConnectNbdAsync();
        await using var qmp = await d.ConnectQmpAsync();
        var layers = new[] { d.Folder.File("s1.qcow2"), d.Folder.File("s2.qcow2"), d.Folder.File("s3.qcow2") };
        await d.WriteRandomlyAsync(guest, seed, 50);
        for (int i = 0; i < layers.Length; i++)
        {
            await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = layers[i] });
            await d.WriteRandomlyAsync(guest, seed + i + 1, 80);
        }

        await guest.FlushAsync();
        Assert.Equal([layers[2], layers[1], layers[0], d.BaseImage], Chain(await qmp.ExecuteAsync("query-block")));

        // The top into the layer below it (an active merge whose base is not the bottom).
        await MergeAsync(qmp, new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "m1", ["base"] = layers[1] }, active: true);
        Assert.Equal([layers[1], layers[0], d.BaseImage], Chain(await qmp.ExecuteAsync("query-block")));
        Assert.True(LiveDaemon.SameBytes(d.Model, await d.ReadAllAsync(guest)), $"after merging the top (seed {seed})");

        // A middle layer into the bottom.
        await MergeAsync(qmp, new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "m2", ["top"] = layers[0], ["base"] = d.BaseImage }, active: false);
        Assert.Equal([layers[1], d.BaseImage], Chain(await qmp.ExecuteAsync("query-block")));
        Assert.True(LiveDaemon.SameBytes(d.Model, await d.ReadAllAsync(guest)), $"after merging the middle (seed {seed})");
        await guest.FlushAsync();
        Processes.Run("qemu-img", "check", "-U", layers[1]).AssertSuccess();
        await d.WriteRandomlyAsync(guest, seed + 10, 50);

        // The rest, back to the raw disk alone.
        await MergeAsync(qmp, new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "m3" }, active: true);
        Assert.Equal([d.BaseImage], Chain(await qmp.ExecuteAsync("query-block")));
        await guest.FlushAsync();
        Assert.True(LiveDaemon.SameBytes(d.Model, await File.ReadAllBytesAsync(d.BaseImage)), $"the base differs from the model (seed {seed})");
    }

    private static async Task MergeAsync(QmpClient qmp, JsonObject arguments, bool active)
    {
        string id = arguments["job-id"]!.GetValue<string>();
        await qmp.ExecuteAsync("block-commit", arguments);
        if (active)
        {
            await qmp.WaitForEventAsync("BLOCK_JOB_READY", EventTimeout, e => e["data"]!["device"]!.GetValue<string>() == id);
            await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = id });
        }

        var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout, e => e["data"]!["device"]!.GetValue<string>() == id);
        Assert.Null(completed["data"]!["error"]);
    }

    /// <summary>The drive's images, top first, as query-block describes them.</summary>
    private static List<string> Chain(JsonNode? queryBlock)
    {
        var files = new List<string>();
        for (var image = queryBlock![0]!["inserted"]!["image"]; image is not null; image = image["backing-image"])
        {
            files.Add(image["filename"]!.GetValue<string>());
        }

        return files;
    }

    [Fact]
    public async Task AnActiveMergeWalksQemusJobStatesInOrder()
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var guest = await d.ConnectNbdAsync();
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("top.qcow2") });
        await d.WriteRandomlyAsync(guest, 507, 20);
        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "m" });

        var statuses = new List<string>();
        async Task UntilAsync(string status)
        {
            var e = await qmp.WaitForEventAsync("JOB_STATUS_CHANGE", EventTimeout);
            statuses.Add(e["data"]!["status"]!.GetValue<string>());
            if (statuses[^1] != status)
            {
                await UntilAsync(status);
            }
        }

        await UntilAsync("ready");
        await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
        await UntilAsync("null");
        Assert.Equal(["created", "running", "ready", "waiting", "pending", "concluded", "null"], statuses);
    }

    [Fact]
    public async Task CommitOfADriveWithoutBackingIsRefused()
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        var e = await Assert.ThrowsAsync<Control.QmpException>(() => qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId }));
        Assert.Contains("no backing file", e.Message);
    }
}
