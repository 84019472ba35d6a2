namespace Strata.Backup.Stores;

/// <summary>Opens the store a set's name says: <c>s3://BUCKET/PREFIX</c> an S3 store, anything else a folder.</summary>
public static class BackupStores
{
    /// <param name="name">The set as the user gave it.</param>
    /// <param name="forWriting">A point will be added: a missing folder is made, and an S3 set is staged for writing (<see cref="S3BackupStore"/>).</param>
    /// <param name="cancellationToken">Cancels the opening.</param>
    public static async Task<IBackupStore> OpenAsync(string name, bool forWriting = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        return S3Location.IsS3(name)
            ? await S3BackupStore.OpenAsync(S3Location.Parse(name), S3Connection.FromEnvironment(), forWriting, cancellationToken)
            : new FolderBackupStore(BackupSet.Open(name, forWriting));
    }
}
