namespace Strata.Fuzz;

/// <summary>Every target, by the name run.sh and the corpus folders use.</summary>
internal static class FuzzTargets
{
    public static IReadOnlyList<IFuzzTarget> All { get; } = [new Qcow2Target(), new NbdTarget(), new QmpTarget()];

    public static IFuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);
}
