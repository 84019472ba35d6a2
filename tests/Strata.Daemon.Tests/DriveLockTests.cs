using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// Locks follow a drive's chain across live snapshot and merge (docs/locking.md), as QEMU's tools
/// see them: the frozen base may be inspected but not written; a merge takes the base for writing.
/// </summary>
public sealed class DriveLockTests
{
    private const string DriveId = "d";
    private const string WriteLock = "Failed to get \"write\" lock";
    private const string SharedWriteLock = "Failed to get shared \"write\" lock";
    private static readonly TimeSpan EventTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AfterALiveSnapshotTheFrozenBaseCanBeInspectedButNotWritten()
    {
        await using var d = await QcowDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        Refused(await QemuIoWriteAsync(d.Base), WriteLock);
        Refused(await QemuImgInfoAsync(d.Base), SharedWriteLock);

        string overlay = d.Folder.File("overlay.qcow2");
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = DriveId, ["snapshot-file"] = overlay });

        (await QemuImgInfoAsync(d.Base)).AssertSuccess();
        Refused(await QemuIoWriteAsync(d.Base), WriteLock);
        Refused(await QemuIoWriteAsync(overlay), WriteLock);
        Refused(await QemuImgInfoAsync(overlay), SharedWriteLock);
    }

    [Fact]
    public async Task DuringAndAfterAnActiveMergeTheBaseIsLockedForWriting()
    {
        await using var d = await QcowDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        string overlay = await SnapshotAndMergeUntilReadyAsync(d, qmp);

        // Ready: the base is being written as the mirror of every guest write.
        Refused(await QemuIoWriteAsync(d.Base), WriteLock);
        Refused(await QemuImgInfoAsync(d.Base), SharedWriteLock);

        await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
        await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
        Refused(await QemuIoWriteAsync(d.Base), WriteLock);
        Refused(await QemuImgInfoAsync(d.Base), SharedWriteLock);

        // The merged overlay is closed, and with it its locks (qemu-io would open the base below it).
        (await QemuImgInfoAsync(overlay)).AssertSuccess();
    }

    [Fact]
    public async Task ACancelledMergeGivesTheBaseBackAsAFrozenBacking()
    {
        await using var d = await QcowDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        string overlay = await SnapshotAndMergeUntilReadyAsync(d, qmp);
        Refused(await QemuImgInfoAsync(d.Base), SharedWriteLock);

        await qmp.ExecuteAsync("job-cancel", new JsonObject { ["id"] = "m" });
        await qmp.WaitForEventAsync("BLOCK_JOB_CANCELLED", EventTimeout);
        (await QemuImgInfoAsync(d.Base)).AssertSuccess();
        Refused(await QemuIoWriteAsync(d.Base), WriteLock);
    }

    [Fact]
    public async Task AMergeOfAMiddleLayerLeavesTheBaseAFrozenBackingFileAgain()
    {
        await using var d = await QcowDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();
        string mid = d.Folder.File("mid.qcow2");
        string top = d.Folder.File("top.qcow2");
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = DriveId, ["snapshot-file"] = mid });
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = DriveId, ["snapshot-file"] = top });
        Refused(await QemuIoWriteAsync(mid), WriteLock);
        (await QemuImgInfoAsync(mid)).AssertSuccess();

        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = DriveId, ["job-id"] = "m", ["top"] = mid });
        await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);

        (await QemuImgInfoAsync(d.Base)).AssertSuccess();
        Refused(await QemuIoWriteAsync(d.Base), WriteLock);
        // The merged layer is closed: it may be written, its backing file left unopened.
        string alone = $$"""json:{"driver": "qcow2", "file": {"driver": "file", "filename": "{{mid}}"}, "backing": null}""";
        (await Processes.RunAsync("qemu-io", "-c", "write 0 4k", alone)).AssertSuccess();
    }

    [Fact]
    public async Task StoppingTheDaemonReleasesEveryImage()
    {
        var d = await QcowDaemon.StartAsync();
        string overlay = d.Folder.File("overlay.qcow2");
        try
        {
            await using (var qmp = await d.ConnectQmpAsync())
            {
                await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = DriveId, ["snapshot-file"] = overlay });
            }

            Refused(await QemuIoWriteAsync(overlay), WriteLock);
            await d.Daemon.StopAsync();
            (await QemuIoWriteAsync(overlay)).AssertSuccess();
            (await QemuIoWriteAsync(d.Base)).AssertSuccess();
        }
        finally
        {
            await d.DisposeAsync();
        }
    }

    /// <summary>Takes a snapshot into overlay.qcow2 and merges it back as job "m", until the job is ready to complete.</summary>
    private static async Task<string> SnapshotAndMergeUntilReadyAsync(QcowDaemon d, QmpClient qmp)
    {
        string overlay = d.Folder.File("overlay.qcow2");
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = DriveId, ["snapshot-file"] = overlay });
        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = DriveId, ["job-id"] = "m" });
        await qmp.WaitForEventAsync("BLOCK_JOB_READY", EventTimeout);
        return overlay;
    }

    private static Task<ProcessResult> QemuIoWriteAsync(string image) => Processes.RunAsync("qemu-io", "-c", "write -P 9 0 4k", image);

    private static Task<ProcessResult> QemuImgInfoAsync(string image) => Processes.RunAsync("qemu-img", "info", image);

    private static void Refused(ProcessResult result, string expected)
        => Assert.True(result.ExitCode != 0 && result.Stderr.Contains(expected, StringComparison.Ordinal), $"expected '{expected}': {result}");

    /// <summary>An in-process daemon serving one qcow2 drive "d" (base.qcow2, made by qemu-img) on sockets in a temp folder.</summary>
    private sealed class QcowDaemon : IAsyncDisposable
    {
        private QcowDaemon(TempFolder folder, StorageDaemon daemon, string baseImage)
        {
            Folder = folder;
            Daemon = daemon;
            Base = baseImage;
        }

        public TempFolder Folder { get; }

        public StorageDaemon Daemon { get; }

        public string Base { get; }

        public static async Task<QcowDaemon> StartAsync()
        {
            var folder = new TempFolder("lock");
            string image = folder.File("base.qcow2");
            (await Processes.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", image, "8M")).AssertSuccess();
            (await Processes.RunAsync("qemu-io", "-c", "write -P 3 0 2M", image)).AssertSuccess();
            var daemon = new StorageDaemon(new DaemonOptions
            {
                Drives = [new DriveSpec(DriveId, image, "qcow2")],
                NbdEndpoints = [NbdEndpoint.Unix(folder.File("nbd.sock"))],
                QmpEndpoints = [NbdEndpoint.Unix(folder.File("qmp.sock"))],
            });
            await daemon.StartAsync();
            return new QcowDaemon(folder, daemon, image);
        }

        public Task<QmpClient> ConnectQmpAsync() => QmpClient.ConnectAsync(Folder.File("qmp.sock"));

        public async ValueTask DisposeAsync()
        {
            await Daemon.StopAsync();
            Folder.Dispose();
        }
    }
}
