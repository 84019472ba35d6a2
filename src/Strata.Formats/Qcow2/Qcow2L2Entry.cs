namespace Strata.Formats.Qcow2;

/// <summary>
/// Encoding of L1 and L2 table entries (qcow2.txt, "Cluster mapping"): standard entries with the
/// zero flag, and compressed cluster descriptors.
/// </summary>
internal static class Qcow2L2Entry
{
    /// <summary>Bit 63: the refcount is exactly one (the cluster may be written in place).</summary>
    public const ulong Copied = 1UL << 63;

    /// <summary>Bit 62: the cluster is compressed.</summary>
    public const ulong Compressed = 1UL << 62;

    /// <summary>Bit 0 of a standard entry (version 3): the cluster reads as zeroes.</summary>
    public const ulong Zero = 1UL;

    /// <summary>Bits 9-55: host offset of a standard cluster, L2 table or refcount block.</summary>
    public const ulong OffsetMask = 0x00ff_ffff_ffff_fe00UL;

    /// <summary>Bits of a standard L2 entry that must be zero (1-8 and 56-61).</summary>
    public const ulong ReservedMask = 0x3f00_0000_0000_01feUL;

    public const int CompressedSectorSize = 512;

    public static bool IsCompressed(ulong entry) => (entry & Compressed) != 0;

    public static long HostOffset(ulong entry) => (long)(entry & OffsetMask);

    /// <summary>Where compressed data starts and how many bytes it may span (whole 512-byte sectors).</summary>
    public static (long Offset, int Length) CompressedRange(ulong entry, int clusterBits)
    {
        // x = 62 - (cluster_bits - 8): bits 0..x-1 the offset, bits x..61 the extra sector count.
        int shift = 62 - (clusterBits - 8);
        long offset = (long)(entry & ((1UL << shift) - 1));
        long sectors = (long)((entry >> shift) & ((1UL << (clusterBits - 8)) - 1)) + 1;
        long length = (sectors * CompressedSectorSize) - (offset & (CompressedSectorSize - 1));
        return (offset, (int)length);
    }

    /// <summary>A compressed descriptor for data at <paramref name="offset"/> of <paramref name="length"/> bytes.</summary>
    public static ulong MakeCompressed(long offset, int length, int clusterBits)
    {
        int shift = 62 - (clusterBits - 8);
        long lastSector = (offset + length - 1) / CompressedSectorSize;
        long sectors = lastSector - (offset / CompressedSectorSize);
        return Compressed | ((ulong)sectors << shift) | (ulong)offset;
    }
}
