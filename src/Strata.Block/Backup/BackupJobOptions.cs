namespace Strata.Block.Backup;

/// <summary>How a <see cref="BackupJob"/> copies (the arguments of blockdev-backup and drive-backup).</summary>
public sealed record BackupJobOptions
{
    /// <summary>The cluster size of the target when nothing else is known: QEMU's backup default too.</summary>
    public const int DefaultClusterSize = 64 * 1024;

    public BackupSync Sync { get; init; } = BackupSync.Full;

    /// <summary>The drive's bitmap the job reads (required with <see cref="BackupSync.Bitmap"/>, allowed with full and top).</summary>
    public string? Bitmap { get; init; }

    public BitmapSyncMode BitmapMode { get; init; } = BitmapSyncMode.OnSuccess;

    /// <summary>
    /// The unit the job copies and tracks (a power of two from 512 bytes to 64 MiB): a guest write
    /// first copies the old data of every such cluster it touches. Best equal to the target's cluster size.
    /// </summary>
    public int ClusterSize { get; init; } = DefaultClusterSize;

    /// <summary>Copy rate limit of the background copy in bytes per second; 0 means unlimited (QMP "speed").</summary>
    public long Speed { get; init; }

    /// <summary>What a failed read of the drive does (QMP "on-source-error").</summary>
    public IoErrorPolicy OnSourceError { get; init; }

    /// <summary>What a failed write of the target does (QMP "on-target-error").</summary>
    public IoErrorPolicy OnTargetError { get; init; }

    /// <summary>How many chunks the background copy works on at once when no speed limit is set.</summary>
    public int Copiers { get; init; } = 4;

    /// <summary>Bytes per background step (rounded down to whole clusters); a step holds the range lock of its chunk.</summary>
    public int ChunkSize { get; init; } = 1 << 20;

    /// <summary>Close the target when the job concludes (drive-backup made it; a blockdev-add node is not the job's).</summary>
    public bool OwnsTarget { get; init; }
}
