using Strata.Block;

namespace Strata.Backup.Stores;

/// <summary>A backup set in a local folder: the store <see cref="BackupSet"/>, <see cref="BackupWriter"/> and <see cref="BackupVerifier"/> were written for.</summary>
public sealed class FolderBackupStore(BackupSet set) : IBackupStore
{
    public BackupSet Set { get; private set; } = set;

    public int ReadParallelism => 2;

    public string Locate(string name) => Path.Combine(Set.Folder, name);

    public Task<IBlockNode> OpenPointAsync(BackupManifest point, CancellationToken cancellationToken = default) =>
        BackupVerifier.OpenPointAsync(Set, point, cancellationToken);

    /// <summary>The set's own folder (SET/bitmaps, SET/work): the state moves with the set.</summary>
    public DriveState OpenDriveState(string? folder = null, bool create = true) =>
        folder is not null ? throw new BackupException("a set in a folder keeps its live-backup state in that folder, not in another")
        : create ? DriveState.Open(Set.Folder, Set.Folder, owner: null)
        : DriveState.Peek(Set.Folder, Set.Folder);

    /// <summary>Nothing: a point in a folder is made whole or not at all, and the next create removes what a dead one left.</summary>
    public Task<BackupResult?> FinishInterruptedAsync(Action<double>? percent = null, CancellationToken cancellationToken = default) =>
        Task.FromResult<BackupResult?>(null);

    public async Task<BackupResult> CreateAsync(BackupRequest request, Action<double>? percent = null, CancellationToken cancellationToken = default)
    {
        var made = await BackupWriter.CreateAsync(Set.Folder, request, percent, cancellationToken);
        Set = made.Set;
        return made;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
