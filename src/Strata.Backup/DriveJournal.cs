namespace Strata.Backup;

/// <summary>
/// What a <c>--drive</c> backup is doing to the drive, kept in the work folder of its <see cref="DriveState"/> (SET/work/drive.json for a set in a folder; docs/backup.md,
/// "When a live backup fails"). It is written before the transaction that adds the bitmap and makes
/// the overlay, so a backup that dies at any step leaves the names the next one needs to put the
/// drive back: the overlay to merge, and the two bitmaps whose bits are to be joined again.
/// </summary>
public sealed record DriveJournal
{
    public const int CurrentVersion = 1;

    private const string FileName = "drive.json";

    public int Version { get; init; } = CurrentVersion;

    /// <summary>The point the backup was making.</summary>
    public required int Point { get; init; }

    /// <summary>The drive's id in the daemon.</summary>
    public required string Drive { get; init; }

    /// <summary>The snapshot's overlay (full path); null once it is merged back, or was never made.</summary>
    public string? Overlay { get; init; }

    /// <summary>The bitmap the transaction adds: it records every write from the snapshot on.</summary>
    public required ManagedBitmap Bitmap { get; init; }

    /// <summary>The bitmap the transaction disables (the writes from the last point to the snapshot); null for a full point.</summary>
    public ManagedBitmap? Previous { get; init; }

    /// <summary>
    /// Set once a failed backup's bits are handed back (<see cref="Previous"/> merged into
    /// <see cref="Bitmap"/>): <see cref="Bitmap"/>'s file as it then was. It then holds every write
    /// since point <see cref="Point"/> − 1, and serves the next incremental as if that point had recorded it.
    /// </summary>
    public BackupBitmap? Carried { get; init; }

    public static string PathIn(DriveState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        return Path.Combine(state.WorkFolder, FileName);
    }

    /// <summary>The journal in <paramref name="state"/>, or null when no live backup is under way or was left half done.</summary>
    public static DriveJournal? Read(DriveState state)
    {
        string path = PathIn(state);
        return File.Exists(path) ? ManifestJson.ParseJournal(File.ReadAllBytes(path), path) : null;
    }

    /// <summary>Writes the journal durably (temp file, fsync, rename, fsync of the folder) before the step it announces.</summary>
    public void Write(DriveState state) => AtomicFile.Write(PathIn(state), ManifestJson.Serialize(this));

    public static void Delete(DriveState state)
    {
        File.Delete(PathIn(state));
        FolderSync.Flush(state.WorkFolder);
    }
}
