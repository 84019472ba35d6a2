namespace Strata.Backup;

/// <summary>
/// The dirty_bitmap file a backup looked at, as it was then: enough to tell later whether the same
/// file, tracked without a gap, is the one offered for the next incremental.
/// </summary>
/// <param name="File">The file's full path.</param>
/// <param name="Name">The bitmap's name on the drive, when a daemon tracks it.</param>
/// <param name="Granularity">Bytes of disk per bit.</param>
/// <param name="Generation">The file's header generation (it grows by one at each begin-tracking and each save).</param>
/// <param name="State">consistent, frozen, active, in use or inconsistent.</param>
/// <param name="Sha256">The SHA-256 of the bits (QEMU's x-debug-block-dirty-bitmap-sha256), when they were read whole.</param>
/// <param name="Lineage">
/// The file's tracking lineage (docs/bitmaps.md, "Persistence"); null in files and manifests from
/// versions without lineages, whose points keep the older rule (exactly one save since).
/// </param>
public sealed record BackupBitmap(string File, string? Name, long Granularity, ulong Generation, string State, string? Sha256 = null, string? Lineage = null);
