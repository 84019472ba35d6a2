namespace Strata.Formats.Qcow2;

/// <summary>The outcome of a consistency check, with the fields of <c>qemu-img check --output=json</c>.</summary>
public sealed record Qcow2CheckResult
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

    /// <summary>One line per finding, as qemu-img prints them ("ERROR cluster 5 refcount=0 reference=1", "Leaked cluster 9 refcount=1 reference=0").</summary>
    public IReadOnlyList<string> Messages { get; init; } = [];
}
