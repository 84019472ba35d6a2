namespace Strata.Formats.Qcow2;

/// <summary>How an L2 entry maps its guest cluster (qcow2.txt, "Cluster mapping").</summary>
internal enum Qcow2ClusterKind
{
    /// <summary>Reads from the backing node (or zeroes without one).</summary>
    Unallocated,

    /// <summary>Zero flag set (version 3); may still own a host cluster ("zero, allocated").</summary>
    Zero,

    /// <summary>A standard cluster at a host offset, written in place.</summary>
    Normal,

    Compressed,
}
