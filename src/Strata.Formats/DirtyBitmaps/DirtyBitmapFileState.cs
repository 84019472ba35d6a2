namespace Strata.Formats.DirtyBitmaps;

/// <summary>The state field of a dirty_bitmap header (docs/formats/dirty-bitmap.md, "State").</summary>
internal enum DirtyBitmapFileState : uint
{
    /// <summary>Tracking stopped; the bits are complete and their checksum is valid.</summary>
    Consistent = 1,

    /// <summary>Tracking stopped at a snapshot switch; the bits are complete and their checksum is valid.</summary>
    Frozen = 2,

    /// <summary>
    /// A tracker writes into the file: the bits are behind and the intent map is live. Readers see it
    /// as "active" while the tracker holds the file's lock, as "in use" when nobody does (the tracker
    /// died and the file has not been recovered yet).
    /// </summary>
    Active = 3,
}
