using Strata.Block.Backup;
using Strata.Block.Bitmaps;
using Strata.Block.Jobs;

namespace Strata.Block;

/// <summary>Push backups of a drive (blockdev-backup): one at a time, and no other graph change meanwhile.</summary>
public sealed partial class Drive
{
    // The backup job last prepared on this drive.
    private BackupJob? _backup;

    /// <summary>
    /// Prepares a push backup of the drive into <paramref name="target"/> (not started): checks the
    /// target's size and the bitmap (which must exist, be consistent and not be used by another job),
    /// and marks the bitmap busy until the job concludes. While the job runs the drive refuses
    /// snapshots, merges and other backups: its filter sits on top of the drive.
    /// </summary>
    public BackupJob PrepareBackup(string jobId, IBlockNode target, BackupJobOptions options)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        ThrowIfBusy();
        if (target.Size < Top.Size)
        {
            throw BlockException.Invalid($"the target ({target.Size} bytes) is smaller than drive '{Id}' ({Top.Size} bytes)");
        }

        if ((target.Capabilities & NodeCapabilities.ReadOnly) != 0)
        {
            throw BlockException.ReadOnly($"the target '{target.FileName ?? target.DriverName}' is read-only");
        }

        DirtyBitmap.ValidateGranularity(options.ClusterSize);
        DriveBitmap? bitmap = null;
        if (options.Bitmap is { } name)
        {
            if (options.Sync == BackupSync.None)
            {
                throw BlockException.Invalid("a bitmap cannot be used with sync=none");
            }

            bitmap = Bitmaps.Find(name) ?? throw BlockException.Invalid($"Dirty bitmap '{name}' not found");
            if (bitmap.Inconsistent)
            {
                throw BlockException.Invalid($"Bitmap '{name}' is inconsistent and cannot be used");
            }

            if (bitmap.Busy)
            {
                throw BlockException.Invalid($"Bitmap '{name}' is currently in use by another operation and cannot be used");
            }
        }
        else if (options.Sync == BackupSync.Bitmap)
        {
            throw BlockException.Invalid("sync mode 'bitmap' and 'incremental' need a bitmap");
        }

        var job = new BackupJob(jobId, this, target, options, bitmap);
        _backup = job;
        return job;
    }

    private Job? BusyWith => _merge is { Status: not JobStatus.Concluded } ? _merge : _backup is { Status: not JobStatus.Concluded } ? _backup : null;
}
