namespace Strata.Block.Tests.Graph;

/// <summary>
/// An image "file" held in memory: 4 KiB pages, each unallocated (reads fall through to the backing
/// node) or holding data, and the backing file it records. Every open of the file
/// (<see cref="MemoryImageNode"/>) sees the same pages, as two opens of one file do.
/// </summary>
public sealed class MemoryImage(long size, string? backingFile = null, string? backingFormat = null)
{
    public const int PageSize = 4096;

    // Protects Data and Allocated.
    public Lock Lock { get; } = new();

    public byte[] Data { get; } = new byte[size];

    public bool[] Allocated { get; } = new bool[(size + PageSize - 1) / PageSize];

    public string? BackingFile { get; set; } = backingFile;

    public string? BackingFormat { get; set; } = backingFormat;

    /// <summary>The bitmaps the image stores (what qcow2's bitmaps extension holds), by name, in the order added.</summary>
    public List<Strata.TestKit.MemoryBitmapFile> Bitmaps { get; } = [];

    /// <summary>Pages written and not yet flushed by some open of the image.</summary>
    public int UnflushedWrites { get; set; }

    public int AllocatedPages
    {
        get
        {
            lock (Lock)
            {
                return Allocated.Count(a => a);
            }
        }
    }
}
