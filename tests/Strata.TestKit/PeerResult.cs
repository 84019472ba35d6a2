namespace Strata.TestKit;

/// <summary>What a peer process did: its command line, exit code and captured output.</summary>
public sealed record PeerResult(string CommandLine, int ExitCode, string Stdout, string Stderr)
{
    /// <summary>The whole story in one string, for assertion messages.</summary>
    public override string ToString() => $"$ {CommandLine}\nexit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";

    /// <summary>Throws with the full story when the exit code is not 0.</summary>
    public PeerResult EnsureSuccess()
    {
        if (ExitCode != 0)
        {
            throw new InvalidOperationException($"peer failed: {this}");
        }

        return this;
    }
}
