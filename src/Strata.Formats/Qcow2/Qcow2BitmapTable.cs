namespace Strata.Formats.Qcow2;

/// <summary>
/// Entries of a bitmap table (qcow2.txt, "Bitmap table"): one per cluster of bitmap data, either a
/// host cluster offset or, when the offset is 0, bit 0 saying whether the cluster reads as all
/// zeroes (0) or all ones (1).
/// </summary>
internal static class Qcow2BitmapTable
{
    public const ulong OffsetMask = 0x00fffffffffffe00UL;
    public const ulong AllOnes = 1UL;

    /// <summary>Bits 1-8 and 56-63 are reserved and must be zero.</summary>
    public const ulong ReservedMask = 0xff000000000001feUL;

    public static long HostOffset(ulong entry) => (long)(entry & OffsetMask);

    /// <summary>Why an entry is invalid (reserved bits, bit 0 with an offset, misaligned or outside the file), or null.</summary>
    public static string? Problem(ulong entry, int clusterSize, long fileSize)
    {
        if ((entry & ReservedMask) != 0)
        {
            return $"entry 0x{entry:x} has reserved bits set";
        }

        long offset = HostOffset(entry);
        if (offset == 0)
        {
            return null;
        }

        if ((entry & AllOnes) != 0)
        {
            return $"entry 0x{entry:x} has both an offset and the all-ones bit";
        }

        if ((offset & (clusterSize - 1)) != 0 || offset > fileSize - clusterSize)
        {
            return $"data cluster offset 0x{offset:x} is not a cluster inside the file";
        }

        return null;
    }
}
