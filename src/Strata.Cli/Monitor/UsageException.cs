namespace Strata.Cli.Monitor;

/// <summary>A console command typed wrongly; its message is shown as it is.</summary>
public sealed class UsageException : Exception
{
    public UsageException(string message)
        : base(message)
    {
    }

    public UsageException()
    {
    }

    public UsageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
