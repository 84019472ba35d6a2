using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Fuzz.Tests;

/// <summary>
/// Short afl-fuzz runs of the targets through fuzz/run.sh, on one instrumented copy of the driver that
/// the first run makes. A run passes when afl finds nothing, or only crashes already known: those
/// whose signature (<see cref="FailureSignature"/>) is that of an input kept in the target's pending/
/// folder, waiting for its fix. A new crash fails the run; its input is kept for reproducing it.
/// </summary>
public sealed class AflBuild : IDisposable
{
    /// <summary>How many of the inputs afl saved are replayed to name their crash (hangs take seconds each).</summary>
    private const int MaxTriaged = 8;

    private static readonly TimeSpan RunLimit = TimeSpan.FromMinutes(4);

    private readonly TempFolder _build = new("fuzz-build");

    public void Dispose() => _build.Dispose();

    public async Task AssertNoNewCrashAsync(string target, int seconds, ITestOutputHelper output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var findings = new TempFolder($"fuzz-{target}");
        string script = Path.Combine(FuzzFolder.Root, "run.sh");
        var run = await Processes.RunAsync("bash",
            [script, "-c", FuzzFolder.Configuration, "--no-build", "--build-dir", _build.Path, "--findings", findings.Path, target, $"{seconds}"],
            new ProcessOptions { Timeout = RunLimit });
        output.WriteLine(run.Stdout);
        if (run.ExitCode == 0)
        {
            findings.Dispose();
            return;
        }

        Assert.True(run.ExitCode == 3, $"fuzz/run.sh failed:\n{run}");
        string saved = Path.Combine(findings.Path, "afl", "default");
        var inputs = new[] { "crashes", "hangs" }
            .SelectMany(folder => Directory.GetFiles(Path.Combine(saved, folder), "id:*"))
            .Order(StringComparer.Ordinal)
            .ToList();
        var known = (await Triage.SignaturesAsync(target, FuzzFolder.Inputs(target, "pending"))).Values.ToHashSet();
        var found = await Triage.SignaturesAsync(target, Sample(inputs));
        var fresh = found.Where(f => f.Value is not null && !known.Contains(f.Value))
            .GroupBy(f => f.Value!, f => f.Key)
            .ToList();
        foreach (var (input, signature) in found)
        {
            output.WriteLine($"{(signature is null ? "passes now" : known.Contains(signature) ? "pending" : "NEW"),-10} {signature} {input}");
        }

        if (fresh.Count == 0)
        {
            findings.Dispose();
            return;
        }

        Assert.Fail($"afl-fuzz found {fresh.Count} kind(s) of crash of {target} that no input in fuzz/{target}/pending has "
            + $"(inputs kept in {saved}); reproduce one with 'dotnet {FuzzFolder.Driver} {target} INPUT':\n"
            + string.Join("\n", fresh.Select(f => $"  {f.Key}\n    {f.Count()} input(s), the first {f.First()}")));
    }

    /// <summary>At most <see cref="MaxTriaged"/> inputs, spread over the run (afl saves a crash only for a new path).</summary>
    private static List<string> Sample(List<string> inputs)
        => inputs.Count <= MaxTriaged
            ? inputs
            : [.. Enumerable.Range(0, MaxTriaged).Select(i => inputs[i * inputs.Count / MaxTriaged])];
}
