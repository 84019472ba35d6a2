namespace Strata.Cli.Tests;

/// <summary>What one command line did: its exit status and everything it wrote.</summary>
public sealed record CommandResult(int ExitCode, string Output, string Error)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
}
