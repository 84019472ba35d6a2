using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.Formats;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// A disk served without an explicit format stays guarded through a snapshot and a merge: a qcow2
/// header the guest writes to its first sector lands in the overlay (where it is only data), and
/// the merge that would copy it into the probed raw base fails instead, as QEMU's commit does.
/// </summary>
public sealed class ProbedDiskMergeTests
{
    private const long Size = 8 << 20;

    [Fact]
    public async Task AMergeThatWouldGiveAProbedBaseAHeaderFailsAndLeavesTheDriveOnTheOverlay()
    {
        using var dir = new TempFolder("probe");
        string image = dir.File("foo.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", image, $"{Size}").AssertSuccess();
        await using var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec(DriveSpec.HdaId, image)],
            NbdEndpoints = [NbdEndpoint.Unix(dir.File("nbd.sock"))],
            QmpEndpoints = [NbdEndpoint.Unix(dir.File("qmp.sock"))],
        });
        await daemon.StartAsync();
        await using var guest = await NbdClient.ConnectAsync(NbdEndpoint.Unix(dir.File("nbd.sock")), DriveSpec.HdaId);
        await using var qmp = await QmpClient.ConnectAsync(dir.File("qmp.sock"));

        string overlay = dir.File("tmp_disk.img");
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = DriveSpec.HdaId, ["snapshot-file"] = overlay });
        var header = new byte[512];
        new byte[] { (byte)'Q', (byte)'F', (byte)'I', 0xfb, 0, 0, 0, 3 }.CopyTo(header, 0);
        await guest.WriteAsync(0, header);
        await guest.FlushAsync();

        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = DriveSpec.HdaId, ["job-id"] = "m" });
        var done = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", TimeSpan.FromSeconds(60));
        Assert.Contains("refused", done["data"]!["error"]?.GetValue<string>() ?? "", StringComparison.Ordinal);

        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(overlay, block[0]!["inserted"]!["file"]!.GetValue<string>());
        var read = new byte[512];
        await guest.ReadAsync(0, read);
        Assert.Equal(header, read);
        var baseStart = new byte[512];
        await using (var file = File.OpenRead(image))
        {
            await file.ReadExactlyAsync(baseStart);
        }

        Assert.Null(ImageSignatures.Detect(baseStart));
    }
}
