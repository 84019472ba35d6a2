using Strata.TestKit;

namespace Strata.Fuzz.Tests;

/// <summary>
/// Names the failure of each input by replaying it with the driver in a process of its own: a hang
/// there leaves a busy thread only in that process, which the next replay replaces.
/// </summary>
internal static class Triage
{
    private static readonly TimeSpan ReplayLimit = TimeSpan.FromMinutes(2);

    /// <summary>Each input's failure signature, or null for an input that passes.</summary>
    public static async Task<Dictionary<string, string?>> SignaturesAsync(string target, IReadOnlyList<string> inputs)
    {
        var signatures = new Dictionary<string, string?>();
        // Each pass replays what is left; the driver stops after a hang, which the next pass skips. Bounded by the inputs.
        for (int pass = 0; pass <= inputs.Count && signatures.Count < inputs.Count; pass++)
        {
            var rest = inputs.Where(i => !signatures.ContainsKey(i)).ToList();
            var replay = await Processes.RunAsync(Processes.DotnetHost(), [FuzzFolder.Driver, target, "--brief", .. rest], new ProcessOptions { Timeout = ReplayLimit });
            int before = signatures.Count;
            Read(replay.Stdout, signatures);
            Assert.True(signatures.Count > before, $"the driver replayed none of {rest.Count} inputs:\n{replay}");
        }

        return signatures;
    }

    /// <summary>Reads the driver's "ok|FAIL|HANG  PATH" lines, each failure followed by "signature: …".</summary>
    private static void Read(string replay, Dictionary<string, string?> signatures)
    {
        string? failing = null;
        foreach (string line in replay.Split('\n'))
        {
            if (line.StartsWith("ok    ", StringComparison.Ordinal))
            {
                signatures[line[6..]] = null;
            }
            else if (line.StartsWith("FAIL  ", StringComparison.Ordinal) || line.StartsWith("HANG  ", StringComparison.Ordinal))
            {
                failing = line[6..];
            }
            else if (failing is not null && line.TrimStart().StartsWith("signature: ", StringComparison.Ordinal))
            {
                signatures[failing] = line.TrimStart()["signature: ".Length..];
                failing = null;
            }
        }
    }
}
