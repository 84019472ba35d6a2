namespace Strata.Block.Bitmaps;

/// <summary>
/// A layer that is a stored dirty bitmap rather than a disk (a dirty_bitmap file opened read-only):
/// a capability asked for with a type test, so that <c>img map</c> lists its dirty extents without
/// knowing the format.
/// </summary>
public interface IBitmapImage
{
    /// <summary>The bits as a reader sees them: the stored ones, or after a tracker died the recovered superset.</summary>
    DirtyBitmap Bits { get; }

    /// <summary>The stored state: Active while tracked or after a tracker died, Inconsistent when the bits failed their checksum.</summary>
    BitmapStoreState State { get; }

    /// <summary>A tracker holds the file now: the stored bits are behind it, and what is read may be incomplete.</summary>
    bool Tracked { get; }

    /// <summary>
    /// How many times the stored header was rewritten (begin tracking, save): a backup checks that a
    /// bitmap it saw tracking was saved exactly once since, so no untracked gap lies between.
    /// </summary>
    ulong Generation { get; }

    /// <summary>The stored tracking lineage, for stores that keep one (docs/bitmaps.md, "Persistence").</summary>
    BitmapLineage? Lineage => null;
}
