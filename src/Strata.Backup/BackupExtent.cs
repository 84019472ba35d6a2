namespace Strata.Backup;

/// <summary>A run of disk bytes a point copied (a manifest's <c>extents</c>).</summary>
public readonly record struct BackupExtent(long Offset, long Length);
