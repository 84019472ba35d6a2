namespace Strata.Backup;

/// <summary>A backup set operation that cannot go on: one line for the user, nothing half done left behind.</summary>
public sealed class BackupException : Exception
{
    public BackupException(string message)
        : base(message)
    {
    }

    public BackupException()
        : this("backup error")
    {
    }

    public BackupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
