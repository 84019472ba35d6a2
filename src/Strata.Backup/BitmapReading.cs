using Strata.Block.Bitmaps;

namespace Strata.Backup;

/// <summary>A dirty_bitmap file as a backup found it: its record for the manifest, and what decides whether it can be trusted.</summary>
/// <param name="Record">What the manifest keeps of it.</param>
/// <param name="DiskSize">The size of the disk the bitmap describes.</param>
/// <param name="Tracked">A tracker holds the file now: its stored bits are behind.</param>
/// <param name="State">The stored state (Active also when a tracker died and the bits are a recovered superset).</param>
/// <param name="Bits">The bits as read.</param>
/// <param name="Lineage">The lineage as the file says it (why it began; whether the image changed since the close that stopped tracking).</param>
public sealed record BitmapReading(BackupBitmap Record, long DiskSize, bool Tracked, BitmapStoreState State, DirtyBitmap Bits, BitmapLineage? Lineage = null);
