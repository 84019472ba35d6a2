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

    public async Task<BackupResult> CreateAsync(BackupRequest request, Action<double>? percent = null, CancellationToken cancellationToken = default)
    {
        var made = await BackupWriter.CreateAsync(Set.Folder, request, percent, cancellationToken);
        Set = made.Set;
        return made;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
