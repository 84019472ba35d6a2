namespace Strata.Block;

/// <summary>What a layer knows about an extent; the same notions as QEMU's block status.</summary>
[Flags]
public enum BlockState
{
    /// <summary>This layer does not describe the extent: reads fall through to the backing node.</summary>
    Unallocated = 0,

    /// <summary>This layer decides the content of the extent.</summary>
    Allocated = 1,

    /// <summary>The extent reads as zeroes.</summary>
    Zero = 2,

    /// <summary>The extent is stored as data (at <see cref="BlockExtent.HostOffset"/> when known).</summary>
    Data = 4,

    /// <summary>The data is stored compressed (no plain host offset).</summary>
    Compressed = 8,
}
