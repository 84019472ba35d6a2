namespace Strata.Block;

/// <summary>
/// The outcome of a consistency check (<see cref="IImageCheck"/>), with the counters of
/// <c>qemu-img check --output=json</c>; clusters are the format's allocation units.
/// </summary>
public sealed record ImageCheckResult
{
    public long Corruptions { get; init; }

    public long Leaks { get; init; }

    public long CheckErrors { get; init; }

    public long CorruptionsFixed { get; init; }

    public long LeaksFixed { get; init; }

    public long ImageEndOffset { get; init; }

    public long TotalClusters { get; init; }

    public long AllocatedClusters { get; init; }

    public long FragmentedClusters { get; init; }

    public long CompressedClusters { get; init; }

    /// <summary>One line per finding, in the words QEMU's check uses for them ("ERROR cluster 5 refcount=0 reference=1", "Leaked cluster 9 refcount=1 reference=0").</summary>
    public IReadOnlyList<string> Messages { get; init; } = [];
}
