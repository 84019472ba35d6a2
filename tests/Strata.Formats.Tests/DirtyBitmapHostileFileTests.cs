using System.Buffers.Binary;
using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Formats.DirtyBitmaps;

namespace Strata.Formats.Tests;

/// <summary>Hostile and damaged dirty_bitmap files: each gives one clear line, and memory stays bounded by the file.</summary>
public sealed class DirtyBitmapHostileFileTests
{
    private const long Disk = 1L << 30;

    /// <summary>A valid file whose both header copies get <paramref name="change"/>, checksums recomputed.</summary>
    private static async Task<byte[]> WithBothHeadersAsync(Func<DirtyBitmapHeader, DirtyBitmapHeader> change, long disk = Disk)
    {
        var bytes = await DirtyBitmapTestFile.NewAsync(disk, 65536);
        for (int slot = 0; slot < 2; slot++)
        {
            var span = bytes.AsSpan(slot * DirtyBitmapHeader.SlotSize, DirtyBitmapHeader.SlotSize);
            var header = DirtyBitmapHeader.TryParse(span, out _)!;
            change(header).Write(span);
        }

        return bytes;
    }

    private static async Task<BlockException> OpenFailsAsync(byte[] bytes)
        => await Assert.ThrowsAsync<BlockException>(async () => await DirtyBitmapStore.OpenAsync(await DirtyBitmapTestFile.NodeOfAsync(bytes), "evil.dbmp"));

    [Fact]
    public async Task AFileWithoutTheMagicIsNotADirtyBitmap()
    {
        var e = await OpenFailsAsync(new byte[16384]);
        Assert.Equal("evil.dbmp: not a dirty_bitmap file (bad magic)", e.Message);
    }

    [Fact]
    public async Task AFileShorterThanAHeaderIsRefused()
    {
        var e = await OpenFailsAsync(new byte[100]);
        Assert.Contains("not a dirty_bitmap file (only 100 bytes)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BothCopiesFailingTheirChecksumIsCorrupt()
    {
        var bytes = await DirtyBitmapTestFile.NewAsync(Disk, 65536);
        bytes[30] ^= 1;
        bytes[DirtyBitmapHeader.SlotSize + 30] ^= 1;
        var e = await OpenFailsAsync(bytes);
        Assert.Equal(BlockError.Corrupt, e.Error);
        Assert.Equal("evil.dbmp: no valid header copy (first: header checksum mismatch; second: header checksum mismatch)", e.Message);
    }

    [Fact]
    public async Task ANewerVersionIsNotSupported()
    {
        var e = await OpenFailsAsync(await WithBothHeadersAsync(h => h with { Version = 2 }));
        Assert.Equal(BlockError.NotSupported, e.Error);
        Assert.Contains("unsupported dirty_bitmap version 2", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("granularity", "granularity 2^8 is outside")]
    [InlineData("state", "unknown state 9")]
    [InlineData("disk", "disk size -5 is outside")]
    [InlineData("huge-disk", "the bit area is 2048 bytes, but the disk size and granularity need")]
    [InlineData("huge-bits", "the bit area of 1125899906842624 bytes is larger than the 536870912 bytes allowed")]
    [InlineData("intent-bits", "intent region 2^12 is smaller than the granularity")]
    [InlineData("intent-offset", "the intent map offset 4096 is not a multiple of 4096 after the two header slots")]
    [InlineData("bits-past-end", "past the end of the")]
    [InlineData("overlap", "overlaps the bit area")]
    [InlineData("header-size", "no valid header copy (first: header size 5000 is outside 128..4096")]
    public async Task EveryFieldIsBoundedBeforeUse(string field, string expected)
    {
        var bytes = await WithBothHeadersAsync(h => field switch
        {
            "granularity" => h with { GranularityBits = 8 },
            "state" => h with { State = (DirtyBitmapFileState)9 },
            "disk" => h with { DiskSize = -5 },
            "huge-disk" => h with { DiskSize = DirtyBitmapHeader.MaxDiskSize },
            "huge-bits" => h with { DiskSize = DirtyBitmapHeader.MaxDiskSize, GranularityBits = 9, BitsLength = DirtyBitmapHeader.WordBytes(DirtyBitmapHeader.MaxDiskSize, 512), IntentGranularityBits = 40, IntentLength = DirtyBitmapHeader.WordBytes(DirtyBitmapHeader.MaxDiskSize, 1L << 40) },
            "intent-bits" => h with { IntentGranularityBits = 12 },
            "intent-offset" => h with { IntentOffset = 4096 },
            "bits-past-end" => h with { BitsOffset = 1L << 40 },
            "overlap" => h with { BitsOffset = h.IntentOffset },
            _ => h,
        });
        if (field == "header-size")
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12), 5000);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(DirtyBitmapHeader.SlotSize + 12), 5000);
        }

        var e = await OpenFailsAsync(bytes);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("evil.dbmp: ", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task ATruncatedFileIsRefusedAsTruncated()
    {
        var bytes = await DirtyBitmapTestFile.NewAsync(Disk, 4096);
        var e = await OpenFailsAsync(bytes[..(bytes.Length - 8192)]);
        Assert.Equal(BlockError.Corrupt, e.Error);
        Assert.Contains("past the end of the", e.Message, StringComparison.Ordinal);
        Assert.Contains("(truncated?)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BitsThatFailTheirChecksumLoadInconsistentWithEveryBitSet()
    {
        var bytes = await DirtyBitmapTestFile.NewAsync(Disk, 65536);
        var header = DirtyBitmapHeader.TryParse(bytes, out _)!;
        bytes[header.BitsOffset + 3] = 0x10;
        var (store, bits, loaded) = await DirtyBitmapTestFile.LoadAsync(await DirtyBitmapTestFile.NodeOfAsync(bytes));
        await using var owned = store;
        Assert.Equal(BitmapStoreState.Inconsistent, loaded.State);
        Assert.Equal(Disk, bits.DirtyBytes);
    }

    [Fact]
    public async Task RandomDamageNeverEscapesAsAnythingButABlockException()
    {
        int seed = TestKit.Workload.NewSeed();
        var random = new Random(seed);
        var valid = await DirtyBitmapTestFile.NewAsync(1L << 26, 4096, 1L << 20);
        for (int round = 0; round < 300; round++)
        {
            var bytes = (byte[])valid.Clone();
            for (int flips = random.Next(1, 8); flips > 0; flips--)
            {
                bytes[random.Next(2 * DirtyBitmapHeader.SlotSize)] = (byte)random.Next(256);
            }

            try
            {
                var (store, _, _) = await DirtyBitmapTestFile.LoadAsync(await DirtyBitmapTestFile.NodeOfAsync(bytes));
                await store.DisposeAsync();
            }
            catch (BlockException)
            {
                // A clear refusal is a right answer.
            }
            catch (Exception e)
            {
                Assert.Fail($"seed {seed}, round {round}: {e.GetType().Name}: {e.Message}");
            }
        }
    }
}
