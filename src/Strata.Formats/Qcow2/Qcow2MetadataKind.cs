namespace Strata.Formats.Qcow2;

/// <summary>
/// The kinds of metadata a write is checked against: QEMU's "cached" overlap-check set (block/qcow2.h,
/// QCOW2_OL_CACHED), plus the bitmap directory and bitmap tables (qcow2.txt, "Bitmaps"). The snapshot table and inactive L1/L2 tables are not tracked: an image with
/// internal snapshots only ever opens read-only here, so nothing is written to it.
/// </summary>
[Flags]
internal enum Qcow2MetadataKind
{
    None = 0,

    /// <summary>The first cluster: header, extensions, backing file name.</summary>
    Header = 1,
    L1Table = 2,
    L2Table = 4,
    RefcountTable = 8,
    RefcountBlock = 16,

    /// <summary>The bitmap directory the bitmaps extension points to.</summary>
    BitmapDirectory = 32,

    /// <summary>A bitmap's table (its data clusters are not metadata: only the table names them).</summary>
    BitmapTable = 64,
}
