using Strata.Block.Bitmaps;
using Strata.Formats;

namespace Strata.Backup;

/// <summary>
/// When a bitmap may make an incremental point (docs/backup.md, "When a backup is incremental").
/// A backup can never silently be wrong, so anything short of proof gives a full point, with the
/// reason: the bitmap must be readable, complete (saved, not tracked now, not recovered, its
/// checksum good), of the image's size, its image unchanged since a close stopped it, and it must
/// have been tracking the disk when the set's last point was taken and kept tracking without a gap
/// since: in the same tracking lineage and saved since (docs/bitmaps.md, "Persistence"), or, for a
/// point recorded before lineages, saved exactly once since (its generation one higher). Then it
/// holds every write between that point and now.
/// </summary>
public static class IncrementalRule
{
    /// <param name="last">The set's last point, or null for an empty set.</param>
    /// <param name="imageSize">The size of the image to back up.</param>
    /// <param name="bitmapFile">The bitmap file given, or null.</param>
    /// <param name="bitmap">What was read from it (null when it could not be read).</param>
    /// <param name="readProblem">Why it could not be read.</param>
    /// <param name="carried">
    /// A bitmap a failed live backup handed its bits back to (<see cref="DriveJournal.Carried"/>): it
    /// then held every write since <paramref name="last"/>, and counts as if that point had recorded it.
    /// </param>
    public static BackupPlan Decide(BackupManifest? last, long imageSize, string? bitmapFile, BitmapReading? bitmap, string? readProblem,
        BackupBitmap? carried = null)
    {
        if (bitmapFile is null)
        {
            return BackupPlan.Full(null);
        }

        string name = Path.GetFileName(bitmapFile);
        if (last is null)
        {
            return BackupPlan.Full("the set has no point yet");
        }

        if (bitmap is null)
        {
            return BackupPlan.Full($"bitmap '{name}' cannot be read ({readProblem ?? "unknown error"})");
        }

        string? why = bitmap switch
        {
            { Tracked: true } => $"bitmap '{name}' is being tracked now: its bits are not complete",
            { State: BitmapStoreState.Active } => $"bitmap '{name}' was left in use by a tracker that stopped: when it stopped is unknown",
            { State: BitmapStoreState.Inconsistent } => $"bitmap '{name}' is inconsistent (its bits failed their checksum)",
            _ when bitmap.DiskSize != imageSize => $"bitmap '{name}' covers a disk of {bitmap.DiskSize} bytes, the image has {imageSize}",
            _ when last.Size != imageSize => $"the disk is {imageSize} bytes, point {last.Point} was {last.Size}",
            { Lineage.ImageChanged: { } change } => $"bitmap '{name}' stopped tracking when its daemon stopped, and since then {change}: those writes are not in it",
            _ => null,
        };
        if (why is not null)
        {
            return BackupPlan.Full(why);
        }

        var seen = last.Tracking.FirstOrDefault(t => PathsEqual(t.File, bitmap.Record.File))
            ?? (carried is not null && PathsEqual(carried.File, bitmap.Record.File) ? carried : null);
        if (seen is null)
        {
            return BackupPlan.Full($"bitmap '{name}' was not tracking the disk when point {last.Point} was taken");
        }

        if (seen.Granularity != bitmap.Record.Granularity)
        {
            return BackupPlan.Full($"bitmap '{name}' is not the file seen at point {last.Point} (granularity {bitmap.Record.Granularity}, was {seen.Granularity})");
        }

        if (seen.Lineage is { } lineage)
        {
            return bitmap.Record.Lineage != lineage
                ? BackupPlan.Full($"bitmap '{name}' began a new tracking lineage after point {last.Point} ({bitmap.Lineage?.Began ?? "the file keeps no lineage"}): it may miss writes since")
                : bitmap.Record.Generation > seen.Generation ? BackupPlan.Incremental
                : BackupPlan.Full($"bitmap '{name}' has generation {bitmap.Record.Generation}, not after the {seen.Generation} seen at point {last.Point}: an older copy of the file?");
        }

        return bitmap.Record.Generation == seen.Generation + 1
            ? BackupPlan.Incremental
            : BackupPlan.Full($"bitmap '{name}' has generation {bitmap.Record.Generation}, {seen.Generation + 1} expected after point {last.Point}: it may have stopped tracking in between");
    }

    private static bool PathsEqual(string a, string b) => string.Equals(ImageOpener.FullName(a), ImageOpener.FullName(b), StringComparison.Ordinal);
}
