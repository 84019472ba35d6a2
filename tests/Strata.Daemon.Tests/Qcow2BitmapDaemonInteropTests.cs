using System.Text.Json.Nodes;
using Strata.Block.Bitmaps;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// Persistent bitmaps in qcow2 (qcow2.txt, "Bitmaps extension"; docs/interop/bitmaps.rst) passed between
/// QEMU's tools and a real `strata serve`: each side tracks what the other stored, stores what the other
/// reads (qemu-img info, qemu-img check, qemu-storage-daemon's sha256), across a live snapshot and merge,
/// and a SIGKILL leaves the bitmap in use, which both then call inconsistent (QEMU's rule).
/// </summary>
public sealed class Qcow2BitmapDaemonInteropTests
{
    private const long Size = 16 << 20;
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task ABitmapQemuImgAddedIsTrackedByStrataAndStoredForQemu()
    {
        const int seed = 1401;
        using var folder = new TempFolder("bmq2");
        string image = CreateQcow2(folder);
        Processes.Run("qemu-img", "bitmap", "--add", "--enable", "-g", "65536", image, "b0").AssertSuccess();
        var model = new DirtyBitmap(Size, 65536);

        await using (var strata = await DaemonProcess.StartAsync(folder.Path, image, "qcow2"))
        {
            await GuestAsync(strata, new Random(seed), model);
            Assert.Equal(0, await strata.QuitAsync());
        }

        await AssertQemuReadsAsync(image, model, folder, $"seed {seed}: the writes Strata tracked");
    }

    [Fact]
    public async Task ABitmapQsdStoredIsLoadedAndTrackedByStrata()
    {
        const int seed = 1402;
        var random = new Random(seed);
        using var folder = new TempFolder("bmq2");
        string image = CreateQcow2(folder);
        var model = new DirtyBitmap(Size, 4096);

        string socket = folder.File("q.sock");
        await using (var qsd = await Qsd.StartAsync(socket, folder.File("q.qmp"), [
            "--blockdev", $"driver=file,node-name=file0,filename={image},discard=unmap",
            "--blockdev", "driver=qcow2,node-name=fmt0,file=file0,discard=unmap",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
            "--export", "type=nbd,id=exp0,node-name=fmt0,name=disk,writable=on"]))
        {
            await using var qmp = await qsd.ConnectQmpAsync();
            await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = "fmt0", ["name"] = "b0", ["granularity"] = 4096, ["persistent"] = true });
            await using (var guest = await NbdClient.ConnectAsync(NbdEndpoint.Unix(socket), "disk"))
            {
                await WriteAsync(guest, random, model);
            }

            await qmp.SendAsync(new JsonObject { ["execute"] = "quit" });
            Assert.Equal(0, await qsd.WaitForExitAsync());
        }

        Assert.Equal(["auto"], BitmapFlags(image, "b0"));
        Assert.True(model.Sha256() == await Qsd.BitmapSha256Async(image, "b0", folder), $"seed {seed}: qsd stored other bits than its writes");
        await using (var strata = await DaemonProcess.StartAsync(folder.Path, image, "qcow2"))
        {
            await using var qmp = await strata.ConnectQmpAsync();
            Assert.True(model.Sha256() == await Sha256Async(qmp, "b0"), $"seed {seed}: Strata loaded other bits than qsd stored");
            var b0 = (await qmp.ExecuteAsync("query-block"))!.AsArray()[0]!["inserted"]!["dirty-bitmaps"]!.AsArray().Single()!;
            Assert.Equal(("b0", 4096L, true, true, false), (b0["name"]!.GetValue<string>(), b0["granularity"]!.GetValue<long>(),
                b0["recording"]!.GetValue<bool>(), b0["persistent"]!.GetValue<bool>(), b0["inconsistent"]!.GetValue<bool>()));
            await GuestAsync(strata, random, model);
            Assert.True(model.Sha256() == await Sha256Async(qmp, "b0"), $"seed {seed}: Strata's b0 is not qsd's writes plus its own");
            Assert.Equal(0, await strata.QuitAsync());
        }

        await AssertQemuReadsAsync(image, model, folder, $"seed {seed}: the writes of both");
    }

    [Fact]
    public async Task ABitmapFollowsASnapshotAndAMergeBackIntoTheBaseWhereQemuReadsIt()
    {
        const int seed = 1403;
        var random = new Random(seed);
        using var folder = new TempFolder("bmq2");
        string image = CreateQcow2(folder);
        string overlay = folder.File("tmp.img");
        Processes.Run("qemu-img", "bitmap", "--add", "-g", "65536", image, "b0").AssertSuccess();
        var model = new DirtyBitmap(Size, 65536);

        await using (var strata = await DaemonProcess.StartAsync(folder.Path, image, "qcow2"))
        {
            await using var qmp = await strata.ConnectQmpAsync();
            await using var guest = await strata.ConnectNbdAsync();
            await WriteAsync(guest, random, model);
            await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay });
            await WriteAsync(guest, random, model);
            await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "m" });
            await qmp.WaitForEventAsync("BLOCK_JOB_READY", JobTimeout);
            await WriteAsync(guest, random, model);
            await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "m" });
            Assert.Null((await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", JobTimeout))["data"]!["error"]);
            await WriteAsync(guest, random, model);
            Assert.True(model.Sha256() == await Sha256Async(qmp, "b0"), $"seed {seed}: b0 lost a write across the snapshot and merge");
            await guest.DisposeAsync();
            Assert.Equal(0, await strata.QuitAsync());
        }

        await AssertQemuReadsAsync(image, model, folder, $"seed {seed}: every write, in the base");
    }

    [Fact]
    public async Task ASigkillLeavesAnEnabledBitmapInUseAndBothStrataAndQemuCallItInconsistent()
    {
        using var folder = new TempFolder("bmq2");
        string image = CreateQcow2(folder);
        Processes.Run("qemu-img", "bitmap", "--add", image, "b0").AssertSuccess();
        await using (var strata = await DaemonProcess.StartAsync(folder.Path, image, "qcow2"))
        {
            await GuestAsync(strata, new Random(1404), new DirtyBitmap(Size, 65536));
            await strata.KillAsync();
        }

        Assert.Equal(["in-use", "auto"], BitmapFlags(image, "b0"));
        CrashTests.CheckNoCorruption(image);
        await using (var strata = await DaemonProcess.StartAsync(folder.Path, image, "qcow2"))
        {
            await using var qmp = await strata.ConnectQmpAsync();
            var b0 = (await qmp.ExecuteAsync("query-block"))!.AsArray()[0]!["inserted"]!["dirty-bitmaps"]!.AsArray().Single()!;
            Assert.Equal(("b0", true, false), (b0["name"]!.GetValue<string>(), b0["inconsistent"]!.GetValue<bool>(), b0["recording"]!.GetValue<bool>()));
            Assert.Contains("in-use", BitmapFlags(image, "b0", "-U"));
            Assert.Equal(0, await strata.QuitAsync());
        }

        // An inconsistent bitmap stays in use in the image until it is removed or cleared, as in QEMU.
        Assert.Equal(["in-use", "auto"], BitmapFlags(image, "b0"));
        CrashTests.CheckNoCorruption(image);
    }

    /// <summary>
    /// What QEMU sees in <paramref name="image"/> after a clean stop: bitmap b0 listed enabled and not
    /// in use, a clean check, and qsd's sha256 of it equal to <paramref name="model"/> (<paramref name="what"/> says what the model holds).
    /// </summary>
    private static async Task AssertQemuReadsAsync(string image, DirtyBitmap model, TempFolder folder, string what)
    {
        Assert.Equal(["auto"], BitmapFlags(image, "b0"));
        Processes.Run("qemu-img", "check", image).AssertSuccess();
        Assert.True(model.Sha256() == await Qsd.BitmapSha256Async(image, "b0", folder), $"qsd reads in b0 other bits than {what}");
    }

    private static string CreateQcow2(TempFolder folder)
    {
        string image = folder.File("foo.qcow2");
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", image, Size.ToString()).AssertSuccess();
        return image;
    }

    /// <summary>The flags qemu-img info lists for <paramref name="name"/> ("in-use", "auto"), in its order.</summary>
    private static string[] BitmapFlags(string image, string name, params string[] options)
    {
        var info = JsonNode.Parse(Processes.Run("qemu-img", ["info", "--output=json", .. options, image]).AssertSuccess().Stdout)!;
        var bitmap = info["format-specific"]!["data"]!["bitmaps"]!.AsArray().Single(b => b!["name"]!.GetValue<string>() == name)!;
        return [.. bitmap["flags"]!.AsArray().Select(f => f!.GetValue<string>())];
    }

    private static async Task<string> Sha256Async(Daemon.Control.QmpClient qmp, string name) =>
        (await qmp.ExecuteAsync("x-debug-block-dirty-bitmap-sha256", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = name }))!["sha256"]!.GetValue<string>();

    private static async Task GuestAsync(DaemonProcess daemon, Random random, DirtyBitmap model)
    {
        await using var guest = await daemon.ConnectNbdAsync();
        await WriteAsync(guest, random, model);
        await guest.FlushAsync();
    }

    /// <summary>Seeded writes, write-zeroes and discards, each marked in <paramref name="model"/>.</summary>
    private static async Task WriteAsync(NbdClient guest, Random random, DirtyBitmap model)
    {
        for (int i = 0; i < 30; i++)
        {
            uint length = (uint)random.Next(1, 128 << 10);
            long offset = random.NextInt64(0, Size - length + 1);
            var data = new byte[length];
            random.NextBytes(data);
            await (random.Next(5) switch
            {
                0 => guest.WriteZeroesAsync(offset, length),
                1 => guest.TrimAsync(offset, length),
                _ => guest.WriteAsync(offset, data),
            });
            model.Set(offset, length);
        }
    }
}
