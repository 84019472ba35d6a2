namespace Strata.Cli.Img;

/// <summary>A user-facing failure: one line for stderr and the exit status to return.</summary>
public sealed class CliException : Exception
{
    public CliException(string message, int exitCode = 1)
        : base(message) => ExitCode = exitCode;

    public CliException()
        : this("error")
    {
    }

    public CliException(string message, Exception innerException)
        : base(message, innerException) => ExitCode = 1;

    public int ExitCode { get; }
}
