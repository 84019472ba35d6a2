using Strata.Block;
using Strata.Formats.DirtyBitmaps;

namespace Strata.Formats.Tests;

/// <summary>dirty_bitmap files in memory for the store's tests: made, copied and reopened.</summary>
internal static class DirtyBitmapTestFile
{
    /// <summary>The bytes of a new, empty, consistent file.</summary>
    public static async Task<byte[]> NewAsync(long diskSize, long granularity, long? intentGranularity = null)
    {
        var header = DirtyBitmapHeader.ForNew(diskSize, granularity, intentGranularity);
        var file = new MemoryNode(header.FileLength);
        await DirtyBitmapFile.FormatAsync(file, header);
        return file.ToArray();
    }

    /// <summary>A memory node holding <paramref name="bytes"/>.</summary>
    public static async Task<MemoryNode> NodeOfAsync(byte[] bytes)
    {
        var node = new MemoryNode(bytes.Length);
        await node.WriteAsync(0, bytes);
        return node;
    }

    /// <summary>Opens a store on <paramref name="file"/> and loads it into a new bitmap.</summary>
    public static async Task<(DirtyBitmapStore Store, Block.Bitmaps.DirtyBitmap Bits, Block.Bitmaps.BitmapLoadResult Loaded)> LoadAsync(IBlockNode file)
    {
        var store = await DirtyBitmapStore.OpenAsync(file, "test.dbmp");
        var bits = new Block.Bitmaps.DirtyBitmap(store.DiskSize, store.Granularity);
        var loaded = await store.LoadAsync(bits);
        return (store, bits, loaded);
    }
}
