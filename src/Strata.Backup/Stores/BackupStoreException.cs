namespace Strata.Backup.Stores;

/// <summary>
/// The object store could not be used at all: it refused the credentials, or it stayed unreachable
/// through every retry. One line for the user; the command line exits with its own status (3), so a
/// script can tell "try again later or fix the credentials" from a backup that failed for its own reasons.
/// </summary>
public sealed class BackupStoreException : Exception
{
    public BackupStoreException(string message)
        : base(message)
    {
    }

    public BackupStoreException()
        : this("the object store cannot be used")
    {
    }

    public BackupStoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
