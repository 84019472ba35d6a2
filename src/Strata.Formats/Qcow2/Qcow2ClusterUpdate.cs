namespace Strata.Formats.Qcow2;

/// <summary>What a whole-cluster update does to L2 entries (write-zeroes, discard, make-empty).</summary>
internal enum Qcow2ClusterUpdate
{
    /// <summary>Reads as zeroes afterwards: the zero flag (version 3), or unallocated without a backing node.</summary>
    Zero,

    /// <summary>Frees the host cluster; keeps the backing from showing through when the version allows.</summary>
    Discard,

    /// <summary>Unallocated afterwards: reads fall through to the backing node.</summary>
    Deallocate,
}
