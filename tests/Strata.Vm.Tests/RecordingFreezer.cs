using Strata.Agent;

namespace Strata.Vm.Tests;

/// <summary>A freezer with two mounts, "/" and "/data", that records each call and can refuse one mount point.</summary>
internal sealed class RecordingFreezer : IFreezer
{
    public List<string> Calls { get; } = [];

    public string? Refuse { get; set; }

    public IReadOnlyList<string> FreezableMounts() => ["/", "/data"];

    public void Freeze(string mountPoint)
    {
        if (mountPoint == Refuse)
        {
            throw AgentError.Generic($"cannot freeze {mountPoint}: refused");
        }

        Calls.Add($"freeze {mountPoint}");
    }

    public void Thaw(string mountPoint) => Calls.Add($"thaw {mountPoint}");
}
