using System.Text.Json;
using Strata.Block.Bitmaps;
using Strata.Formats;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;

namespace Strata.Cli.Tests;

/// <summary><c>img create|info|map</c> of dirty_bitmap files.</summary>
public sealed class DirtyBitmapCommandTests : IDisposable
{
    private const long Disk = 10L << 30;
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private string File(string name) => _dir.File(name);

    /// <summary>Makes a bitmap file whose saved bits are the given ranges, through the tracking store.</summary>
    private async Task<string> SavedAsync(string name, long granularity, params (long Offset, long Length)[] dirty)
    {
        string path = File(name);
        StrataCli.ImgOk("create", "-q", "-f", "dirty_bitmap", "-o", $"cluster_size={granularity}", path, Disk.ToString());
        await using var store = await new DirtyBitmapFiles(StandardDrivers.Registry).OpenAsync(path);
        var bits = new DirtyBitmap(store.DiskSize, store.Granularity);
        await store.LoadAsync(bits);
        await store.BeginTrackingAsync();
        foreach (var (offset, length) in dirty)
        {
            await store.BeforeWriteAsync(offset, length);
            bits.Set(offset, length);
        }

        await store.SaveAsync(bits, BitmapStoreState.Consistent);
        return path;
    }

    [Fact]
    public void CreateSpellsItLikeQemuImgAndDefaultsTo64kGranularity()
    {
        var result = StrataCli.ImgOk("create", "-f", "dirty_bitmap", File("t0.dbmp"), "10G");
        Assert.Equal($"Formatting '{File("t0.dbmp")}', fmt=dirty_bitmap cluster_size=65536 size=10737418240\n", result.Stdout);
        var info = StrataCli.ImgOk("info", File("t0.dbmp")).Stdout;
        Assert.Contains("file format: dirty_bitmap\n", info, StringComparison.Ordinal);
        Assert.Contains("virtual size: 10 GiB (10737418240 bytes)\n", info, StringComparison.Ordinal);
        Assert.Contains("cluster_size: 65536\n", info, StringComparison.Ordinal);
        Assert.Contains("    state: consistent\n", info, StringComparison.Ordinal);
        Assert.Contains("    dirty count: 0\n", info, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cluster_size=3k", "granularity 3072 must be a power of two from 512 to 67108864")]
    [InlineData("cluster_size=128M", "granularity 134217728 must be a power of two")]
    [InlineData("cluster_size=256", "granularity 256 must be a power of two")]
    [InlineData("cluster_size=lots", "Parameter 'cluster_size' expects a size")]
    [InlineData("compat=1.1", "Invalid parameter 'compat'")]
    public void CreateRefusesABadOptionInOneLineAndLeavesNoFile(string option, string expected)
    {
        var result = StrataCli.Img("create", "-f", "dirty_bitmap", "-o", option, File("t0.dbmp"), "1G");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.TrimEnd('\n').Split('\n'));
        Assert.False(System.IO.File.Exists(File("t0.dbmp")));
    }

    [Fact]
    public async Task InfoShowsGranularityStateGenerationAndDirtyCountInTextAndJson()
    {
        string path = await SavedAsync("t0.dbmp", 4096, (0, 1), (1L << 20, 10_000));
        var text = StrataCli.ImgOk("info", path).Stdout;
        Assert.Contains("cluster_size: 4096\n", text, StringComparison.Ordinal);
        Assert.Contains("    state: consistent\n    generation: 3\n    granularity: 4096\n", text, StringComparison.Ordinal);
        Assert.Contains("    dirty count: 16384\n", text, StringComparison.Ordinal);

        using var json = JsonDocument.Parse(StrataCli.ImgOk("info", "--output=json", path).Stdout);
        var root = json.RootElement;
        Assert.Equal("dirty_bitmap", root.GetProperty("format").GetString());
        Assert.Equal(Disk, root.GetProperty("virtual-size").GetInt64());
        var data = root.GetProperty("format-specific").GetProperty("data");
        Assert.Equal("consistent", data.GetProperty("state").GetString());
        Assert.Equal(4096, data.GetProperty("granularity").GetInt64());
        Assert.Equal(16384, data.GetProperty("dirty-count").GetInt64());
        Assert.Equal(64, data.GetProperty("sha256").GetString()!.Length);
    }

    [Fact]
    public async Task MapListsTheDirtyExtentsAsATableAndEveryRunAsJson()
    {
        string path = await SavedAsync("t0.dbmp", 65536, (0, 1), (1L << 20, 200_000));
        Assert.Equal(
            "Offset          Length          File\n"
            + $"0               0x10000         {path}\n"
            + $"0x100000        0x40000         {path}\n",
            StrataCli.ImgOk("map", path).Stdout);

        using var json = JsonDocument.Parse(StrataCli.ImgOk("map", "--output=json", path).Stdout);
        var runs = json.RootElement.EnumerateArray()
            .Select(e => (e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("dirty").GetBoolean()))
            .ToList();
        Assert.Equal(
        [
            (0L, 65536L, true), (65536L, (1L << 20) - 65536, false), (1L << 20, 0x40000L, true), ((1L << 20) + 0x40000, Disk - (1L << 20) - 0x40000, false),
        ], runs);
    }

    [Fact]
    public async Task MapRefusesWhileATrackerHoldsTheFileAndWarnsWithForceShare()
    {
        string path = File("t0.dbmp");
        StrataCli.ImgOk("create", "-q", "-f", "dirty_bitmap", path, "1G");
        await using var store = await new DirtyBitmapFiles(StandardDrivers.Registry).OpenAsync(path);
        await store.LoadAsync(new DirtyBitmap(store.DiskSize, store.Granularity));
        await store.BeginTrackingAsync();
        await store.BeforeWriteAsync(5000, 1);

        var refused = StrataCli.Img("map", path);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("is being tracked (state active)", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("    state: active\n", StrataCli.ImgOk("info", path).Stdout, StringComparison.Ordinal);

        var shared = StrataCli.ImgOk("map", "-U", path);
        Assert.Contains("warning:", shared.Stderr, StringComparison.Ordinal);
        Assert.Contains($"0               0x4000000       {path}\n", shared.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFileLeftActiveByADeadTrackerShowsInUseAndItsRecoveredSuperset()
    {
        string path = File("t0.dbmp");
        StrataCli.ImgOk("create", "-q", "-f", "dirty_bitmap", path, "1G");
        var store = await new DirtyBitmapFiles(StandardDrivers.Registry).OpenAsync(path);
        await store.LoadAsync(new DirtyBitmap(store.DiskSize, store.Granularity));
        await store.BeginTrackingAsync();
        await store.BeforeWriteAsync(300L << 20, 1);
        await store.DisposeAsync(); // the tracker dies: no save

        var info = StrataCli.ImgOk("info", path).Stdout;
        Assert.Contains("cleanly shut down: no\n", info, StringComparison.Ordinal);
        Assert.Contains("    state: in use\n", info, StringComparison.Ordinal);
        var map = StrataCli.ImgOk("map", path);
        Assert.Contains("recovered superset", map.Stderr, StringComparison.Ordinal);
        Assert.Contains($"0x10000000      0x4000000       {path}\n", map.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void ADamagedFileGivesOneLine()
    {
        string path = File("t0.dbmp");
        StrataCli.ImgOk("create", "-q", "-f", "dirty_bitmap", path, "1G");
        using (var stream = System.IO.File.OpenWrite(path))
        {
            stream.Write(new byte[8192]); // both header slots
        }

        foreach (string command in new[] { "info", "map" })
        {
            var result = StrataCli.Img(command, "-f", "dirty_bitmap", path);
            Assert.Equal(1, result.ExitCode);
            Assert.Equal($"strata img: {path}: not a dirty_bitmap file (bad magic)\n", result.Stderr);
        }
    }

    [Fact]
    public void ASparseFileDeclaringMoreBitsThanTheCapGivesOneLine()
    {
        // Both header copies (docs/formats/dirty-bitmap.md) say: a 4 TiB disk at 512 B, so 1 GiB of
        // bits, with a valid checksum; the file is sparse and long enough to hold them.
        string path = File("huge.dbmp");
        StrataCli.ImgOk("create", "-q", "-f", "dirty_bitmap", path, "1G");
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            for (int copy = 0; copy < 2; copy++)
            {
                // The checksum covers the header as long as its size field says (128, or more with a lineage).
                var slot = new byte[4096];
                stream.Position = copy * 4096;
                stream.ReadExactly(slot);
                slot = slot[..(int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(slot.AsSpan(12))];
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(slot.AsSpan(24), 4L << 40);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(slot.AsSpan(32), 9);
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(slot.AsSpan(72), 1L << 30);
                slot.AsSpan(112, 16).Clear();
                System.Security.Cryptography.SHA256.HashData(slot).AsSpan(0, 16).CopyTo(slot.AsSpan(112));
                stream.Position = copy * 4096;
                stream.Write(slot);
            }

            stream.SetLength(8L << 30);
        }

        foreach (string command in new[] { "info", "map" })
        {
            var result = StrataCli.Img(command, path);
            Assert.Equal(1, result.ExitCode);
            Assert.Equal($"strata img: {path}: the bit area of {1L << 30} bytes is larger than the {512 << 20} bytes allowed\n", result.Stderr);
        }
    }

    [Fact]
    public void ABitmapFileIsNoDiskToCopy()
    {
        StrataCli.ImgOk("create", "-q", "-f", "dirty_bitmap", File("t0.dbmp"), "1M");
        var result = StrataCli.Img("convert", "-O", "raw", File("t0.dbmp"), File("out.raw"));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("is a dirty_bitmap file, not a disk image", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void ABitmapFileIsNoFormatToConvertTo()
    {
        StrataCli.ImgOk("create", "-q", "-f", "raw", File("disk.raw"), "1M");
        var result = StrataCli.Img("convert", "-O", "dirty_bitmap", File("disk.raw"), File("out.dbmp"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("strata img: 'dirty_bitmap' is not a disk image format: convert writes disk images\n", result.Stderr);
        Assert.False(System.IO.File.Exists(File("out.dbmp")));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ABitmapFileIsNoBackingFileWhetherProbedOrNamed(bool named)
    {
        StrataCli.ImgOk("create", "-q", "-f", "dirty_bitmap", File("t0.dbmp"), "1M");
        string[] format = named ? ["-F", "dirty_bitmap"] : [];
        var result = StrataCli.Img(["create", "-f", "qcow2", "-b", File("t0.dbmp"), .. format, File("over.qcow2")]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("is a dirty_bitmap file, not a disk image: it cannot be a backing file", result.Stderr, StringComparison.Ordinal);
        Assert.False(System.IO.File.Exists(File("over.qcow2")));
    }

    [Fact]
    public void HelpNamesTheFormatAndItsOptions()
    {
        Assert.Contains("dirty_bitmap: cluster_size", StrataCli.ImgOk("create", "--help").Stdout, StringComparison.Ordinal);
        Assert.Contains("cluster_size=<size>    - Bytes of disk per bit", StrataCli.ImgOk("create", "-f", "dirty_bitmap", "-o", "help").Stdout, StringComparison.Ordinal);
        Assert.Contains("dirty_bitmap file", StrataCli.ImgOk("map", "--help").Stdout, StringComparison.Ordinal);
    }
}
