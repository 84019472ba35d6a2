using System.Text.Json.Nodes;
using Strata.Backup;
using Strata.Daemon.Control;

namespace Strata.Cli.Backup;

/// <summary>
/// What a <c>--drive</c> backup does about one that failed or died (docs/backup.md, "When a live
/// backup fails"), from the <see cref="DriveJournal"/> in the set's <see cref="DriveState"/>: the
/// overlay left under the drive is merged back (or, when the drive is no longer on it, the backup
/// stops and says what to do: never a second overlay on top), and the bits of a point that was not
/// made are handed back.
/// </summary>
/// <remarks>
/// The hand-back is QEMU's bitmap-mode=on-success: the transaction disabled the previous bitmap P
/// (the writes from the last point to the snapshot) and added N (the writes from the snapshot on);
/// with no point made, N merged with P holds every write since the last point. The journal then
/// records N's file at its present generation, and the next backup disables N (one save: one
/// generation more) and takes it for an incremental on the last point. If anything between is not
/// as expected (a restart, a bitmap gone or inconsistent), the generations or the checks here do not
/// match and the next point is full: correct, not incremental.
/// </remarks>
internal static class DriveRecovery
{
    /// <summary>
    /// Finishes what the journal in <paramref name="state"/> says a live backup of <paramref name="set"/>
    /// left undone. Returns the carried bitmap that follows the set's last point, or null.
    /// </summary>
    public static async Task<BackupBitmap?> RecoverAsync(QmpClient qmp, BackupSet set, DriveState state, string drive, TextWriter error,
        CancellationToken cancellationToken)
    {
        var journal = DriveJournal.Read(state);
        if (journal is null)
        {
            return null;
        }

        if (journal.Drive != drive)
        {
            throw new BackupException($"the set's last backup, of drive '{journal.Drive}', did not finish: run backup create {state.Set} --drive {journal.Drive} first");
        }

        if (journal.Overlay is { } overlay)
        {
            await RecoverOverlayAsync(qmp, drive, overlay, error, cancellationToken);
            journal = journal with { Overlay = null };
            journal.Write(state);
        }

        var carried = journal.Carried ?? await HandBackAsync(qmp, set, state, journal, error);
        return carried is not null && journal.Point == set.Points.Count ? carried : null;
    }

    /// <summary>
    /// Hands the previous bitmap's bits back to the new one after a point was not made (see the
    /// remarks), and records it in the journal. Returns the carried record, or null when nothing can
    /// be carried (the next point is then full, and one line says why).
    /// </summary>
    public static async Task<BackupBitmap?> HandBackAsync(QmpClient qmp, BackupSet set, DriveState state, DriveJournal journal, TextWriter error)
    {
        if (journal.Previous is not { } previous || journal.Point != set.Points.Count || set.Last?.Point != journal.Point - 1)
        {
            return null;
        }

        var bitmaps = await DriveBackup.DriveBitmapsAsync(qmp, journal.Drive, CancellationToken.None);
        var target = DriveBackup.FindBitmap(bitmaps, journal.Bitmap.Name);
        var source = DriveBackup.FindBitmap(bitmaps, previous.Name);
        string? lost = target is null ? $"bitmap '{journal.Bitmap.Name}' is not on the drive"
            : !DriveBackup.Is(target, "recording") || DriveBackup.Is(target, "inconsistent") ? $"bitmap '{journal.Bitmap.Name}' is not recording"
            : source is null ? $"bitmap '{previous.Name}' is not on the drive"
            : DriveBackup.Is(source, "inconsistent") ? $"bitmap '{previous.Name}' is inconsistent"
            : null;
        if (lost is null)
        {
            await qmp.ExecuteAsync("block-dirty-bitmap-merge",
                new JsonObject { ["node"] = journal.Drive, ["target"] = journal.Bitmap.Name, ["bitmaps"] = new JsonArray { (JsonNode)previous.Name } });
            var (reading, problem) = await BitmapFileReader.TryReadAsync(journal.Bitmap.File, journal.Bitmap.Name);
            if (reading is not null)
            {
                journal = journal with { Carried = reading.Record };
                journal.Write(state);
                error.WriteLine(BackupCli.Prefix + $"the bits of the backup that was not made are kept in bitmap '{journal.Bitmap.Name}': the next one is incremental on point {journal.Point - 1}");
                return reading.Record;
            }

            lost = $"bitmap file {journal.Bitmap.File} cannot be read ({problem})";
        }

        error.WriteLine(BackupCli.Prefix + $"the bits of the backup that was not made cannot be kept ({lost}): the next one is full");
        return null;
    }

    /// <summary>Merges back the overlay a run left under the drive; refuses, with what to do, when the drive is no longer on it.</summary>
    private static async Task RecoverOverlayAsync(QmpClient qmp, string drive, string overlay, TextWriter error, CancellationToken cancellationToken)
    {
        var image = (await DriveBackup.DriveAsync(qmp, drive, cancellationToken))["inserted"]?["image"];
        string? top = image?["filename"]?.GetValue<string>();
        if (top == overlay)
        {
            await DriveBackup.MergeBackAsync(qmp, drive, overlay);
            error.WriteLine(BackupCli.Prefix + $"merged back {overlay}, the overlay an interrupted backup left under drive '{drive}'");
            return;
        }

        if (File.Exists(overlay))
        {
            throw new BackupException($"an interrupted backup left {overlay}, which holds drive '{drive}''s writes after its snapshot, but the drive is on {top ?? "no image"}: "
                + $"to keep those writes stop the daemon, start it with the drive on that overlay (file={overlay},format=qcow2) and run backup create again; "
                + "to drop them delete the overlay");
        }
    }
}
