namespace Strata.Backup;

/// <summary>
/// The record of one backup point (docs/backup.md, "The manifest"): what was copied from where, and
/// a SHA-256 per fixed chunk of the whole disk as this point restores it, so the chain can be checked
/// later by reading only its images. A point exists once its manifest does: the manifest is written
/// last, after the image is flushed.
/// </summary>
public sealed record BackupManifest
{
    /// <summary>Version 2: chunk hashes combine leaf digests (<see cref="LeafSize"/>); version 1: a chunk's bytes hashed whole. Both are read.</summary>
    public const int CurrentVersion = 2;

    /// <summary>The version of a point without leaves: an incremental on a version-1 point stays version 1.</summary>
    public const int VersionWithoutLeaves = 1;

    /// <summary>Chunks hashed per point: large enough to keep manifests small, small enough that an incremental rehashes little.</summary>
    public const int DefaultChunkSize = 4 * 1024 * 1024;

    /// <summary>Leaves per chunk hash of a version 2 manifest: small enough that an incremental reads little more than it copies, large enough that a leaf file is 1/2048 of the disk.</summary>
    public const int DefaultLeafSize = 64 * 1024;

    public int Version { get; init; } = CurrentVersion;

    /// <summary>0 for the first point, then one more per point.</summary>
    public required int Point { get; init; }

    public required DateTimeOffset Time { get; init; }

    public required BackupKind Kind { get; init; }

    /// <summary>The point's qcow2 image, a file name in the set's folder.</summary>
    public required string Image { get; init; }

    /// <summary>The previous point's image, as recorded in this image's header (relative), or null for a full point.</summary>
    public string? Backing { get; init; }

    /// <summary>The disk's size in bytes.</summary>
    public required long Size { get; init; }

    public required BackupSource Source { get; init; }

    /// <summary>The bitmap the point was asked to use (copied or not), as it was read.</summary>
    public BackupBitmap? Bitmap { get; init; }

    /// <summary>Why a full point was made although a bitmap was given; null otherwise.</summary>
    public string? Fallback { get; init; }

    /// <summary>
    /// The dirty_bitmap files that were tracking the disk when this point was taken: each, once
    /// saved exactly once more (its generation one higher), holds every write since this point, and
    /// can make the next point an incremental.
    /// </summary>
    public IReadOnlyList<BackupBitmap> Tracking { get; init; } = [];

    /// <summary>The runs copied into the image (for a full point: the whole disk).</summary>
    public required IReadOnlyList<BackupExtent> Extents { get; init; }

    /// <summary>Bytes of disk per entry of <see cref="Chunks"/>.</summary>
    public required int ChunkSize { get; init; }

    /// <summary>
    /// Version 2: bytes per leaf; a chunk's hash is the SHA-256 of the concatenated SHA-256 digests of
    /// its leaves (the disk's last leaf may be short). Null in version 1.
    /// </summary>
    public int? LeafSize { get; init; }

    /// <summary>The lowercase hex SHA-256 of each chunk of the disk at this point (the last one may be short).</summary>
    public required IReadOnlyList<string> Chunks { get; init; }

    /// <summary>The number of chunks a disk of <paramref name="size"/> bytes has.</summary>
    public static int ChunkCount(long size, int chunkSize) => checked((int)((size + chunkSize - 1) / chunkSize));
}
