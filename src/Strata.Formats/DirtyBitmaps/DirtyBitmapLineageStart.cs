namespace Strata.Formats.DirtyBitmaps;

/// <summary>Why a dirty_bitmap file's tracking lineage began (docs/formats/dirty-bitmap.md, "Lineage"): the header's lineage start field.</summary>
internal enum DirtyBitmapLineageStart : uint
{
    /// <summary>No lineage recorded: a file written by a version without lineages.</summary>
    None = 0,

    Created = 1,

    Cleared = 2,

    /// <summary>Tracking stopped at a close and an image file changed before it began again.</summary>
    ImageChanged = 3,

    /// <summary>Tracking began with no record that the image stayed unchanged since it last stopped.</summary>
    Unvouched = 4,

    /// <summary>Left Active by a crash, tracking resumed on a drive that had already served requests.</summary>
    ResumedLate = 5,
}
