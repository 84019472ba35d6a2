using Strata.Block.Bitmaps;

namespace Strata.TestKit;

/// <summary>
/// A persistent bitmap held in memory, as a dirty_bitmap file or a qcow2 bitmap would hold it: the
/// saved words, the state, the "enabled" flag and, for a crash-safe store, the intents made durable
/// since tracking began. It outlives every open of it (<see cref="MemoryBitmapStore"/>), so a test can
/// close a drive, "crash" it, and open the bitmap again.
/// </summary>
public sealed class MemoryBitmapFile(string name, long diskSize, long granularity)
{
    // Protects Intents (BeforeWrite runs on many request threads at once).
    public Lock Lock { get; } = new();

    public string Name { get; } = name;

    public long DiskSize { get; } = diskSize;

    public long Granularity { get; } = granularity;

    public ulong[] Words { get; set; } = new DirtyBitmap(diskSize, granularity).CopyWords();

    public BitmapStoreState State { get; set; } = BitmapStoreState.Consistent;

    public bool Enabled { get; set; } = true;

    /// <summary>True: after a crash (left Active) the bits are rebuilt from the intents (Strata's file); false: QEMU's semantics, Inconsistent.</summary>
    public bool CrashSafe { get; set; } = true;

    /// <summary>Ranges BeforeWrite was told since tracking began (the durable intent map of a crash-safe store).</summary>
    public List<(long Offset, long Length)> Intents { get; } = [];

    /// <summary>True while an open store tracks into it (the file's lock).</summary>
    public bool Open { get; set; }

    public bool Removed { get; set; }

    /// <summary>Every call any open made, in order ("load", "begin", "save Frozen", "remove", "dispose"); BeforeWrite is counted, not logged.</summary>
    public List<string> Calls { get; } = [];

    public int BeforeWrites;

    /// <summary>The saved bits as a bitmap.</summary>
    public DirtyBitmap Bits()
    {
        var bits = new DirtyBitmap(DiskSize, Granularity);
        bits.Load(Words);
        return bits;
    }
}
