using Strata.Block;

namespace Strata.Backup.Stores;

/// <summary>
/// Where a backup set is kept: a local folder, or a prefix of an S3 bucket. Both hold the same files
/// (docs/backup.md, "The set") and keep the same invariant: a point exists exactly when its manifest
/// does, so nothing half made is ever listed, verified or restored.
/// </summary>
/// <remarks>
/// Call order: open (<see cref="BackupStores.OpenAsync"/>), then any of <see cref="Set"/>,
/// <see cref="OpenPointAsync"/>, <see cref="OpenDriveState"/>, and for a store opened for writing
/// <see cref="FinishInterruptedAsync"/> and, once, <see cref="CreateAsync"/>; dispose last. After a
/// create (or a finish that returned a point), <see cref="Set"/> is the set with the new point.
/// </remarks>
public interface IBackupStore : IAsyncDisposable
{
    /// <summary>The points as their manifests record them.</summary>
    BackupSet Set { get; }

    /// <summary>Where the set's file <paramref name="name"/> is, as a user would name it (a path, an s3:// address).</summary>
    string Locate(string name);

    /// <summary>How many reads of a point a copy keeps in flight: a few for a disk, more for a store with a round trip per read.</summary>
    int ReadParallelism { get; }

    /// <summary>Opens a point's image and its backing chain read-only, as <c>qemu-img convert</c> would.</summary>
    Task<IBlockNode> OpenPointAsync(BackupManifest point, CancellationToken cancellationToken = default);

    /// <summary>
    /// Where a live (<c>--drive</c>) backup of this set keeps its bitmaps, overlay and journal on this
    /// host (<see cref="DriveState"/>): <paramref name="folder"/> when given, else the store's own
    /// place for it. With <paramref name="create"/> the folders are made (and a folder apart from the
    /// set is marked as this set's); without, nothing is touched (for reading the journal).
    /// </summary>
    DriveState OpenDriveState(string? folder = null, bool create = true);

    /// <summary>
    /// Finishes a point a writer that stopped left on its way into the store, and returns it (its
    /// <see cref="BackupResult.Resume"/> says what was done); null when there was none. A live backup
    /// calls it before deciding on the set's last point; <see cref="CreateAsync"/> does it first too,
    /// and then ends with that point.
    /// </summary>
    Task<BackupResult?> FinishInterruptedAsync(Action<double>? percent = null, CancellationToken cancellationToken = default);

    /// <summary>Adds a point (<see cref="BackupWriter"/>); <paramref name="percent"/> hears the progress of the whole.</summary>
    Task<BackupResult> CreateAsync(BackupRequest request, Action<double>? percent = null, CancellationToken cancellationToken = default);
}
