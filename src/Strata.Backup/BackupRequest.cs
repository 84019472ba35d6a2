using Strata.Block.Drivers;
using Strata.Formats;

namespace Strata.Backup;

/// <summary>What <see cref="BackupWriter"/> is asked to back up.</summary>
public sealed record BackupRequest
{
    /// <summary>The image to read (frozen: nobody writes it while the backup runs); opened read-only, sharing everything.</summary>
    public required string Image { get; init; }

    /// <summary>A dirty_bitmap file for an incremental point; null: a full point.</summary>
    public string? Bitmap { get; init; }

    /// <summary>The bitmap's name on the drive, when a daemon manages it (recorded only).</summary>
    public string? BitmapName { get; init; }

    /// <summary>With <see cref="Bitmap"/>: the record of a failed live backup's hand-back that makes it follow the last point (<see cref="IncrementalRule.Decide"/>).</summary>
    public BackupBitmap? Carried { get; init; }

    /// <summary>Without <see cref="Bitmap"/>: why no incremental was possible, recorded as the full point's fallback and told to the user.</summary>
    public string? FullReason { get; init; }

    /// <summary>The drive, when the image is a frozen layer of a running daemon's drive (recorded only).</summary>
    public string? Drive { get; init; }

    /// <summary>
    /// The dirty_bitmap files tracking the disk now, which may make the next point incremental; null:
    /// every tracked dirty_bitmap file of the disk's size in the folder of <see cref="Bitmap"/> (or of
    /// <see cref="Image"/> when there is none), as in the seed's flow where t1 is set beside t0.
    /// </summary>
    public IReadOnlyList<string>? Tracking { get; init; }

    /// <summary>Bytes per hashed chunk of a full point; an incremental keeps its base's.</summary>
    public int ChunkSize { get; init; } = BackupManifest.DefaultChunkSize;

    /// <summary>Hears one line per phase of the backup with its time (<c>backup create -v</c>); null: nobody listens.</summary>
    public Action<string>? Phases { get; init; }

    /// <summary>Bytes per leaf of a full point's chunk hashes (0: a version 1 manifest, chunks hashed whole); an incremental keeps its base's.</summary>
    public int LeafSize { get; init; } = BackupManifest.DefaultLeafSize;

    /// <summary>The drivers the new point's chain opens with (a set in an S3 store adds its <c>s3</c> protocol for the previous point).</summary>
    public DriverRegistry Drivers { get; init; } = StandardDrivers.Registry;

    /// <summary>Where the point's time comes from.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;
}
