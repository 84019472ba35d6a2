namespace Strata.Backup;

/// <summary>
/// Where a <c>--drive</c> backup keeps what must live on the daemon's host and last from one run to
/// the next (docs/backup.md, "A live drive"): the dirty_bitmap files the daemon tracks into
/// (<see cref="BitmapFolder"/>), the snapshot's overlay while a point is copied and the journal
/// (<see cref="WorkFolder"/>). A set in a folder keeps them in its own folder; a set in an object
/// store in a local folder of its own (<see cref="Stores.IBackupStore.OpenDriveState"/>, or
/// <c>--state</c>).
/// </summary>
/// <remarks>
/// The set's manifests name the managed bitmaps by their full path here, so the next incremental
/// finds its bitmap only in the same state folder: another folder, or one lost, gives a full point
/// with the reason (<see cref="IsManaged"/>, never a guess). A folder apart from its set records which
/// set it serves (<see cref="OwnerFile"/>): two sets sharing one would remove each other's bitmaps.
/// </remarks>
public sealed class DriveState
{
    /// <summary>The file in a state folder apart from its set that names the set it serves.</summary>
    public const string OwnerFile = "set";

    private DriveState(string folder, string set)
    {
        Folder = folder;
        Set = set;
    }

    /// <summary>The state folder, a full path.</summary>
    public string Folder { get; }

    /// <summary>The set it serves, as a user names it (for messages).</summary>
    public string Set { get; }

    /// <summary>The daemon-managed dirty_bitmap files.</summary>
    public string BitmapFolder => Path.Combine(Folder, "bitmaps");

    /// <summary>The snapshot's overlay while a backup copies, and the journal (<see cref="DriveJournal"/>).</summary>
    public string WorkFolder => Path.Combine(Folder, "work");

    /// <summary>
    /// The state of the set named <paramref name="set"/> in <paramref name="folder"/>, its folders made.
    /// A folder apart from the set is marked with <paramref name="owner"/> (the set and where it is
    /// stored) the first time, and refused when it is another set's; null: the set's own folder.
    /// </summary>
    public static DriveState Open(string folder, string set, string? owner)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(set);
        var state = new DriveState(Path.GetFullPath(folder), set);
        Directory.CreateDirectory(state.BitmapFolder);
        Directory.CreateDirectory(state.WorkFolder);
        if (owner is not null)
        {
            string marker = Path.Combine(state.Folder, OwnerFile);
            if (!File.Exists(marker))
            {
                AtomicFile.Write(marker, System.Text.Encoding.UTF8.GetBytes(owner + "\n"));
            }
            else if (File.ReadAllText(marker).TrimEnd('\n') is var other && other != owner)
            {
                throw new BackupException($"{state.Folder}: holds the live-backup state of {other}, not of {owner}: give another --state");
            }
        }

        return state;
    }

    /// <summary>The state of <paramref name="set"/> as it is, nothing made: for reading the journal.</summary>
    public static DriveState Peek(string folder, string set) => new(Path.GetFullPath(folder), set);

    /// <summary>Whether <paramref name="file"/> is a bitmap this state keeps: in <see cref="BitmapFolder"/>, by full path.</summary>
    public bool IsManaged(string file) =>
        string.Equals(Path.GetDirectoryName(Path.GetFullPath(file)), BitmapFolder, StringComparison.Ordinal);
}
