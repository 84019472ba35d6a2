namespace Strata.Fuzz;

/// <summary>
/// Every target, by the name run.sh uses. A target's inputs are in the folder named by its name up to
/// the first '-' (qcow2-read shares qcow2's).
/// </summary>
internal static class FuzzTargets
{
    public static IReadOnlyList<IFuzzTarget> All { get; } =
        [new Qcow2Target(writes: true), new Qcow2Target(writes: false), new NbdTarget(), new QmpTarget()];

    public static IFuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);
}
