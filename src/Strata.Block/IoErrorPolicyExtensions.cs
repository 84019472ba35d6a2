namespace Strata.Block;

public static class IoErrorPolicyExtensions
{
    /// <summary>Whether <paramref name="policy"/> stops (rather than reports) for a failure that is, or is not, a full disk.</summary>
    public static bool Stops(this IoErrorPolicy policy, bool noSpace) =>
        policy == IoErrorPolicy.Stop || (policy == IoErrorPolicy.StopOnNoSpace && noSpace);
}
