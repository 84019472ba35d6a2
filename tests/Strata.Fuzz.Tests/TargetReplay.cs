namespace Strata.Fuzz.Tests;

/// <summary>Replays a target's seed corpus and fixed crashes in this process: every input must pass.</summary>
internal static class TargetReplay
{
    public static async Task AssertEveryInputPassesAsync(IFuzzTarget target)
    {
        var inputs = FuzzFolder.Inputs(target.Name, "corpus").Concat(FuzzFolder.Inputs(target.Name, "crashes")).ToList();
        Assert.NotEmpty(inputs);
        var failures = new List<string>();
        foreach (string input in inputs)
        {
            try
            {
                await FuzzRun.RunAsync(target, await File.ReadAllBytesAsync(input));
            }
            catch (FuzzHang e) when (!e.Unwound)
            {
                // Its thread still runs: replaying more here would only compete with it.
                failures.Add($"{input}: {e.Message}");
                break;
            }
            catch (Exception e)
            {
                failures.Add($"{input}: {FailureSignature.Of(e)}\n{e}");
            }
        }

        Assert.True(failures.Count == 0,
            $"{failures.Count} of {inputs.Count} {target.Name} inputs failed; reproduce each with "
            + $"'dotnet {FuzzFolder.Driver} {target.Name} INPUT':\n{string.Join("\n", failures)}");
    }
}
