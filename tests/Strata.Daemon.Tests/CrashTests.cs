using System.Text.Json.Nodes;
using Strata.Nbd.Client;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// The daemon killed with SIGKILL during a live snapshot or a live merge under guest writes, then the
/// resulting chain checked: it opens, qemu-img check finds no corruption, every flushed write is there.
/// </summary>
public sealed class CrashTests
{
    private const long DiskSize = 8 << 20;

    [Theory]
    [InlineData(601)]
    [InlineData(602)]
    [InlineData(603)]
    public async Task KillDuringASnapshotLeavesImagesThatCheckCleanAndHoldEveryFlushedWrite(int seed)
    {
        using var folder = new TempFolder();
        string baseImage = folder.File("foo.img");
        string overlay = folder.File("tmp_disk.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", baseImage, DiskSize.ToString()).AssertSuccess();
        var random = new Random(seed);
        var flushed = new byte[DiskSize];
        bool switched;
        await using (var daemon = await DaemonProcess.StartAsync(folder.Path, baseImage))
        {
            var guest = await daemon.ConnectNbdAsync();
            var qmp = await daemon.ConnectQmpAsync();
            var model = new byte[DiskSize];
            await WriteAsync(guest, random, model, 30);
            await guest.FlushAsync();
            model.CopyTo(flushed, 0);

            var snapshot = qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay });
            await Task.Delay(random.Next(0, 40));
            await daemon.KillAsync();
            switched = snapshot.IsCompletedSuccessfully;
        }

        // foo.img is raw (nothing for qemu-img check to check); the overlay, if the crash left one, is qcow2.
        if (File.Exists(overlay) && ImageFormat(overlay) == "qcow2")
        {
            CheckNoCorruption(overlay);
        }

        // Every write flushed before the snapshot began is in the base, whatever happened after.
        Assert.True(LiveDaemon.SameBytes(flushed, await File.ReadAllBytesAsync(baseImage)), $"a flushed write is missing from foo.img (seed {seed})");
        if (switched)
        {
            Assert.True(LiveDaemon.SameBytes(flushed, ReadChain(overlay)), $"the overlay chain lost a flushed write (seed {seed})");
        }
    }

    [Theory]
    [InlineData(611, false)]
    [InlineData(612, false)]
    [InlineData(613, true)]
    [InlineData(614, true)]
    public async Task KillDuringAMergeLeavesAChainThatOpensChecksCleanAndHoldsEveryFlushedWrite(int seed, bool afterPivot)
    {
        using var folder = new TempFolder();
        string baseImage = folder.File("foo.img");
        string overlay = folder.File("tmp_disk.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", baseImage, DiskSize.ToString()).AssertSuccess();
        var random = new Random(seed);
        var model = new byte[DiskSize];
        var flushed = new byte[DiskSize];
        await using (var daemon = await DaemonProcess.StartAsync(folder.Path, baseImage))
        {
            var guest = await daemon.ConnectNbdAsync();
            var qmp = await daemon.ConnectQmpAsync();
            await WriteAsync(guest, random, model, 30);
            await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay });
            await WriteAsync(guest, random, model, 100);
            await guest.FlushAsync();
            model.CopyTo(flushed, 0);

            await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "m", ["speed"] = 4 << 20 });
            if (afterPivot)
            {
                await qmp.WaitForEventAsync("BLOCK_JOB_READY", TimeSpan.FromMinutes(2));
                await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
                await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", TimeSpan.FromMinutes(2));
            }

            // The guest keeps writing and flushing until the crash.
            using var stop = new CancellationTokenSource(random.Next(50, 400));
            while (!stop.IsCancellationRequested)
            {
                await WriteAsync(guest, random, model, 5);
                await guest.FlushAsync();
                model.CopyTo(flushed, 0);
            }

            await daemon.KillAsync();
        }

        CheckNoCorruption(overlay);
        string top = afterPivot ? baseImage : overlay;
        Assert.True(LiveDaemon.SameBytes(flushed, ReadChain(top)), $"a flushed write is missing after the crash (seed {seed}, after pivot: {afterPivot})");

        // And the daemon starts again on what is left.
        await using var again = await DaemonProcess.StartAsync(folder.Path, top);
        var reader = await again.ConnectNbdAsync();
        var all = new byte[DiskSize];
        for (int done = 0; done < all.Length; done += 1 << 20)
        {
            await reader.ReadAsync(done, all.AsMemory(done, 1 << 20));
        }

        Assert.True(LiveDaemon.SameBytes(flushed, all), $"the restarted daemon does not serve every flushed write (seed {seed})");
    }

    /// <summary>Seeded writes of 4 KiB to 128 KiB at 4 KiB-aligned offsets, mirrored into the model.</summary>
    internal static async Task WriteAsync(NbdClient guest, Random random, byte[] model, int count)
    {
        for (int i = 0; i < count; i++)
        {
            int length = random.Next(1, 33) * 4096;
            long offset = random.NextInt64(0, (model.Length - length) / 4096 + 1) * 4096;
            var data = new byte[length];
            random.NextBytes(data);
            await guest.WriteAsync(offset, data);
            data.CopyTo(model, offset);
        }
    }

    internal static void CheckNoCorruption(string image)
    {
        // Exit 0: clean; 3: leaked clusters only, which a crash may leave (never corruption: 2).
        var check = Processes.Run("qemu-img", "check", image);
        Assert.True(check.ExitCode is 0 or 3, check.ToString());
    }

    private static string ImageFormat(string image) =>
        JsonNode.Parse(Processes.Run("qemu-img", "info", "--output=json", image).AssertSuccess().Stdout)!["format"]!.GetValue<string>();

    private static byte[] ReadChain(string image)
    {
        string raw = image + ".raw";
        Processes.Run("qemu-img", "convert", "-O", "raw", image, raw).AssertSuccess();
        try
        {
            return File.ReadAllBytes(raw);
        }
        finally
        {
            File.Delete(raw);
        }
    }
}
