namespace Strata.Block.Bitmaps;

/// <summary>What the copy of a bitmap in its store says about itself (docs/formats/dirty-bitmap.md, "State").</summary>
public enum BitmapStoreState
{
    /// <summary>A daemon is tracking writes into it: the stored bits are behind, and recovery rebuilds a superset after a crash.</summary>
    Active,

    /// <summary>Tracking stopped at a snapshot switch: the bits say what changed up to that point in time.</summary>
    Frozen,

    /// <summary>Tracking stopped (disabled, removed, the daemon stopped): the stored bits are complete.</summary>
    Consistent,

    /// <summary>
    /// The bits cannot be trusted (QEMU's in-use bitmap after a crash, or a checksum that does not
    /// match); they must not be used for an incremental backup.
    /// </summary>
    Inconsistent,
}
