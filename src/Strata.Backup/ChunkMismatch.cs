namespace Strata.Backup;

/// <summary>A chunk of a point whose bytes, read from the chain now, do not hash to what its manifest recorded.</summary>
public sealed record ChunkMismatch(int Point, BackupExtent Extent, string Expected, string Actual);
