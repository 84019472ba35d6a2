namespace Strata.TestKit;

/// <summary>
/// What a program did: its command line, exit code and everything it wrote. <see cref="ToString"/>
/// is the whole story, so <c>Assert.True(cond, $"{result}")</c> shows it when the assertion fails.
/// </summary>
public sealed record ProcessResult(string CommandLine, int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"$ {CommandLine}\nexit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";

    /// <summary>Fails with the whole story when the exit code is not 0; returns the result for chaining.</summary>
    public ProcessResult AssertSuccess()
    {
        if (ExitCode != 0)
        {
            throw new InvalidOperationException($"expected exit 0:\n{this}");
        }

        return this;
    }
}
