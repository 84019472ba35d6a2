namespace Strata.Block.Backup;

/// <summary>What a backup copies (qapi/block-core.json MirrorSyncMode, as blockdev-backup reads it).</summary>
public enum BackupSync
{
    /// <summary>The whole disk as the guest sees it, all layers (a run that reads as zeroes needs no write on an empty target).</summary>
    Full,

    /// <summary>Only what the drive's top layer allocates: the target, backed by the top's backing file, reads as the disk.</summary>
    Top,

    /// <summary>Nothing in the background: only the old data of what the guest overwrites (copy-before-write), until cancelled.</summary>
    None,

    /// <summary>The dirty extents of a bitmap as they were at the job's start ("incremental" is this with bitmap-mode on-success).</summary>
    Bitmap,
}
