using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Formats.Tests;

/// <summary>
/// What loading a stored bitmap costs in memory when its file is sparse and hostile: a few KiB on
/// disk may declare up to the cap (<see cref="DirtyBitmapHeader.MaxBitsLength"/>, QEMU's 512 MiB),
/// and loading it must hold the bits once, never a second copy; beyond the cap it is one clear line
/// and next to nothing allocated.
/// </summary>
[Collection(AllocationMeasuringCollection.Name)]
public sealed class StoredBitmapMemoryTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _dir = new("bmmem");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task ASparseDirtyBitmapFileIsHeldOnceWhenImgInfoOpensIt()
    {
        // 64 TiB at 64 KiB: 128 MiB of bits in a file that holds two 4 KiB header slots.
        var header = DirtyBitmapHeader.ForNew(64L << 40, 65536);
        string path = WriteSparse(header);

        long before = GC.GetTotalAllocatedBytes(precise: true);
        await using (var node = await ImageOpener.OpenAsync(path, new ImageOpenOptions { ReadOnly = true, AllowNonDisk = true }))
        {
            var image = Assert.IsAssignableFrom<IBitmapImage>(node);
            Assert.Equal(BitmapStoreState.Consistent, image.State);
            Assert.Equal(0, image.Bits.DirtyBytes);
            Assert.Equal(header.BitsLength, image.Bits.Words.Length * 8L);
        }

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        output.WriteLine($"{header.BitsLength >> 20} MiB of bits: {allocated >> 20} MiB allocated");
        Assert.True(allocated < header.BitsLength + (header.BitsLength >> 3),
            $"loading {header.BitsLength >> 20} MiB of bits allocated {allocated >> 20} MiB: the bits were held more than once");
    }

    [Fact]
    public async Task ASparseFileDeclaringMoreThanTheCapIsOneLineAndCostsNothing()
    {
        // 4 TiB at 512 B: 1 GiB of bits, twice the cap; the file is sparse and long enough to hold them.
        var header = DirtyBitmapHeader.ForNew(1L << 40, 512) with { DiskSize = 4L << 40, BitsLength = 1L << 30, IntentLength = DirtyBitmapHeader.WordBytes(4L << 40, 1L << 26), IntentGranularityBits = 26 };
        string path = WriteSparse(header);

        long before = GC.GetTotalAllocatedBytes(precise: true);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await ImageOpener.OpenAsync(path, new ImageOpenOptions { ReadOnly = true, AllowNonDisk = true }));
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        Assert.Equal(BlockError.Corrupt, e.Error);
        Assert.Contains($"the bit area of {1L << 30} bytes is larger than the {DirtyBitmapHeader.MaxBitsLength} bytes allowed", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(allocated < 4L << 20, $"refusing the file allocated {allocated >> 20} MiB");
    }

    [Fact]
    public void CreatingABitmapBeyondTheCapIsRefused()
    {
        var e = Assert.Throws<BlockException>(() => DirtyBitmapHeader.ForNew(4L << 40, 512));
        Assert.Contains($"(at most {DirtyBitmapHeader.MaxBitsLength})", e.Message, StringComparison.Ordinal);
        Assert.Equal(DirtyBitmapHeader.MaxBitsLength, DirtyBitmapHeader.WordBytes(2L << 40, 512));
    }

    [Fact]
    public async Task AQcow2BitmapIsReadStraightIntoItsBits()
    {
        // qemu-img writes a 64 TiB image's 64 KiB bitmap as a table of 2048 all-zero entries: no data clusters.
        string image = _dir.File("big.qcow2");
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", image, "64T");
        Processes.Ok("qemu-img", "bitmap", "--add", image, "b0");
        await using var node = await Qcow2TestImage.OpenAsync(image, readOnly: true);
        var bits = new DirtyBitmap(node.Size, 65536);
        long size = bits.Words.Length * 8L;

        long before = GC.GetTotalAllocatedBytes(precise: true);
        var loaded = await node.OpenBitmap("b0").LoadAsync(bits);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        Assert.Equal(BitmapStoreState.Consistent, loaded.State);
        Assert.Equal(0, bits.DirtyBytes);
        output.WriteLine($"{size >> 20} MiB of bits: {allocated >> 10} KiB allocated while loading");
        Assert.True(allocated < size >> 3, $"loading {size >> 20} MiB of bits into a bitmap allocated {allocated >> 20} MiB more");
    }

    /// <summary>A file holding only both header copies of <paramref name="header"/>, as long as the header says (sparse).</summary>
    private string WriteSparse(DirtyBitmapHeader header)
    {
        string path = _dir.File("sparse.dbmp");
        using var file = File.Create(path);
        file.SetLength(header.BitsOffset + header.BitsLength);
        var slot = new byte[DirtyBitmapHeader.SlotSize];
        foreach (var copy in new[] { header with { Generation = 0 }, header with { Generation = 1 } })
        {
            copy.Write(slot);
            file.Position = copy.Slot * DirtyBitmapHeader.SlotSize;
            file.Write(slot);
        }

        return path;
    }
}
