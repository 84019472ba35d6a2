using System.Text.Json.Nodes;
using Strata.Block.Bitmaps;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>
/// qcow2 persistent bitmaps (qcow2.txt, "Bitmaps extension") against QEMU: bitmaps QEMU writes load
/// with the same bits (qemu-storage-daemon's x-debug-block-dirty-bitmap-sha256 as the oracle), and
/// bitmaps Strata writes are listed, checked and hashed the same by QEMU.
/// </summary>
public sealed class Qcow2BitmapTests
{
    private const long DiskSize = 64L << 20;

    [Fact]
    public async Task CheckCountsTheClustersOfABitmapQemuWrote()
    {
        using var dir = new TempFolder("bmchk");
        string image = QemuImageWithBitmap(dir, "b0", "write 0 1M", "write 8M 64k", "write 40M 3M");

        await using (var node = await Qcow2TestImage.OpenAsync(image, readOnly: true))
        {
            var result = await node.CheckAsync(Qcow2RepairMode.None);
            Assert.True(result.Leaks == 0 && result.Corruptions == 0, string.Join("\n", result.Messages));
        }

        // A repair must find nothing to free: the directory, table and data clusters are referenced.
        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            var repaired = await node.CheckAsync(Qcow2RepairMode.All);
            Assert.True(repaired.LeaksFixed == 0 && repaired.CorruptionsFixed == 0, string.Join("\n", repaired.Messages));
        }

        QemuImg.AssertClean(image, "after Strata's check -r all");
        Assert.Equal(await QemuSha256Async(dir, image, "b0"), await StrataSha256Async(image, "b0"));
    }

    [Fact]
    public async Task ABitmapQemuFilledLoadsWithTheBitsQemuHas()
    {
        using var dir = new TempFolder("bmload");
        string image = QemuImageWithBitmap(dir, "b0", "write 0 4k", "write 1M 200k", "write 63M 1M", "discard 20M 1M");
        Processes.Ok("qemu-img", "bitmap", "--add", "-g", "4k", "--disable", image, "fine");
        Processes.Ok("qemu-img", "bitmap", "--merge", "b0", image, "fine");

        await using var node = await Qcow2TestImage.OpenAsync(image, readOnly: true);
        var listed = node.StoredBitmaps;
        Assert.Equal([new StoredBitmapInfo("b0", 65536, true, false), new StoredBitmapInfo("fine", 4096, false, false)], listed);
        foreach (var info in listed)
        {
            var bits = new DirtyBitmap(node.Size, info.Granularity);
            var loaded = await node.OpenBitmap(info.Name).LoadAsync(bits);
            Assert.Equal(BitmapStoreState.Consistent, loaded.State);
            Assert.Equal(info.Enabled, loaded.Enabled);
            Assert.True(bits.DirtyBytes > 0);
            Assert.Equal(await QemuSha256Async(dir, image, info.Name), bits.Sha256());
        }
    }

    [Fact]
    public async Task ABitmapStrataSavesIsListedCheckedAndHashedByQemu()
    {
        const int seed = 1201;
        using var dir = new TempFolder("bmsave");
        string image = dir.File("s.qcow2");
        await Qcow2TestImage.CreateAsync(image, new Qcow2CreateOptions { Size = DiskSize });
        var model = new DirtyBitmap(DiskSize, 65536);
        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            var random = new Random(seed);
            for (int i = 0; i < 40; i++)
            {
                model.Set(random.NextInt64(DiskSize), random.Next(1, 300_000));
            }

            await using var store = await node.CreateBitmapAsync("strata-bm", 65536, enabled: true);
            await store.BeginTrackingAsync();
            Assert.True(node.StoredBitmaps.Single().InUse);
            await store.SaveAsync(model, BitmapStoreState.Consistent);
            await using var empty = await node.CreateBitmapAsync("empty", 1 << 20, enabled: false);
        }

        var bitmaps = QemuImg.Info(image).GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps");
        Assert.Equal("""[{"flags":["auto"],"name":"strata-bm","granularity":65536},{"flags":[],"name":"empty","granularity":1048576}]""",
            JsonNode.Parse(bitmaps.GetRawText())!.ToJsonString());
        QemuImg.AssertClean(image, $"after Strata saved bitmaps (seed {seed})");
        Assert.True(model.Sha256() == await QemuSha256Async(dir, image, "strata-bm"), $"seed {seed}");

        Processes.Ok("qemu-img", "bitmap", "--remove", image, "strata-bm");
        QemuImg.AssertClean(image, "after qemu-img removed Strata's bitmap");
        await using var reopened = await Qcow2TestImage.OpenAsync(image, readOnly: true);
        Assert.Equal("empty", reopened.StoredBitmaps.Single().Name);
    }

    [Fact]
    public async Task SavingAgainReplacesTheOldClustersAndRemovingFreesThem()
    {
        using var dir = new TempFolder("bmcow");
        string image = dir.File("c.qcow2");
        await Qcow2TestImage.CreateAsync(image, new Qcow2CreateOptions { Size = DiskSize });
        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            await using var store = await node.CreateBitmapAsync("b", 4096, enabled: true);
            var bits = new DirtyBitmap(DiskSize, 4096);
            for (int round = 0; round < 5; round++)
            {
                bits.Set(round * (8L << 20), 5L << 20);
                await store.SaveAsync(bits, BitmapStoreState.Frozen, enabled: round % 2 == 0);
                Assert.Equal(round % 2 == 0, node.StoredBitmaps.Single().Enabled);
                var check = await node.CheckAsync(Qcow2RepairMode.None);
                Assert.True(check.Leaks == 0 && check.Corruptions == 0, $"round {round}: " + string.Join("\n", check.Messages));
            }

            await store.RemoveAsync();
            Assert.Empty(node.StoredBitmaps);
        }

        QemuImg.AssertClean(image, "after the bitmap was saved five times and removed");
        Assert.DoesNotContain("bitmaps", Processes.Ok("qemu-img", "info", image));
    }

    [Fact]
    public async Task WritesThroughStrataAreTrackedInAnEnabledBitmapNoStoreTookOver()
    {
        using var dir = new TempFolder("bmtrack");
        string image = QemuImageWithBitmap(dir, "b0", "write 0 64k");
        var model = new DirtyBitmap(DiskSize, 65536);
        model.Set(0, 65536);
        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            await node.WriteAsync(5L << 20, new byte[70_000]);
            Assert.True(node.StoredBitmaps.Single().InUse, "the first write marks an enabled bitmap in use");
            await node.WriteZeroesAsync(30L << 20, 1 << 20);
            await node.DiscardAsync(50L << 20, 128 << 10);
            model.Set(5L << 20, 70_000);
            model.Set(30L << 20, 1 << 20);
            model.Set(50L << 20, 128 << 10);
        }

        QemuImg.AssertClean(image, "after Strata tracked writes");
        Assert.Equal(model.Sha256(), await QemuSha256Async(dir, image, "b0"));
        Assert.DoesNotContain("in-use", Processes.Ok("qemu-img", "info", image));
    }

    [Fact]
    public async Task ABitmapLeftInUseLoadsAsInconsistent()
    {
        using var dir = new TempFolder("bminuse");
        string image = QemuImageWithBitmap(dir, "b0", "write 0 64k");
        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            await node.OpenBitmap("b0").BeginTrackingAsync();
        }

        Assert.Contains("in-use", Processes.Ok("qemu-img", "info", image));
        await using var reopened = await Qcow2TestImage.OpenAsync(image, readOnly: true);
        var loaded = await reopened.OpenBitmap("b0").LoadAsync(new DirtyBitmap(DiskSize, 65536));
        Assert.Equal(BitmapStoreState.Inconsistent, loaded.State);
    }

    [Fact]
    public async Task OpeningReadWriteKeepsTheBitmapsAutoclearBit()
    {
        using var dir = new TempFolder("bmauto");
        string image = QemuImageWithBitmap(dir, "b0", "write 0 64k");
        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            await node.FlushAsync();
        }

        Assert.Contains("b0", Processes.Ok("qemu-img", "info", image));
        Assert.Equal(await QemuSha256Async(dir, image, "b0"), await StrataSha256Async(image, "b0"));
    }

    [Fact]
    public async Task ResizeStoresTheBitmapsAtTheNewSizeAsQemuImgDoes()
    {
        using var dir = new TempFolder("bmsize");
        string image = QemuImageWithBitmap(dir, "b0", "write 1M 64k");
        Processes.Ok("qemu-img", "bitmap", "--add", "--disable", image, "off");
        Processes.Ok("qemu-img", "bitmap", "--merge", "b0", image, "off");
        await using (var node = await Qcow2TestImage.OpenAsync(image))
        {
            await node.ResizeAsync(DiskSize * 3);
        }

        QemuImg.AssertClean(image, "after a resize with bitmaps");
        await using var reopened = await Qcow2TestImage.OpenAsync(image, readOnly: true);
        foreach (string name in new[] { "b0", "off" })
        {
            var bits = new DirtyBitmap(DiskSize * 3, 65536);
            await reopened.OpenBitmap(name).LoadAsync(bits);
            Assert.Equal([(1L << 20, 65536L)], bits.DirtyRuns());
            Assert.Equal(bits.Sha256(), await QemuSha256Async(dir, image, name));
        }
    }

    /// <summary>A 64 MiB qcow2 image made by qemu-img with the enabled bitmap <paramref name="bitmap"/>, then written by qemu-io (which tracks it).</summary>
    internal static string QemuImageWithBitmap(TempFolder dir, string bitmap, params string[] qemuIoCommands)
    {
        string image = dir.File("q.qcow2");
        Processes.Ok("qemu-img", "create", "-f", "qcow2", image, DiskSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Processes.Ok("qemu-img", "bitmap", "--add", image, bitmap);
        if (qemuIoCommands.Length > 0)
        {
            QemuIo.Ok(image, "qcow2", qemuIoCommands);
        }

        return image;
    }

    internal static Task<string> QemuSha256Async(TempFolder dir, string image, string bitmap) => Qsd.BitmapSha256Async(image, bitmap, dir);

    private static async Task<string> StrataSha256Async(string image, string bitmap)
    {
        await using var node = await Qcow2TestImage.OpenAsync(image, readOnly: true);
        var info = node.StoredBitmaps.Single(b => b.Name == bitmap);
        var bits = new DirtyBitmap(node.Size, info.Granularity);
        await node.OpenBitmap(bitmap).LoadAsync(bits);
        return bits.Sha256();
    }
}
