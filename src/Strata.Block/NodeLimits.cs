namespace Strata.Block;

/// <param name="RequestAlignment">Offsets and lengths are multiples of this (1 for byte granularity).</param>
/// <param name="PreferredAlignment">I/O aligned to this avoids read-modify-write (the cluster size of qcow2).</param>
/// <param name="MaxTransfer">The largest read or write accepted in one request.</param>
public readonly record struct NodeLimits(int RequestAlignment, int PreferredAlignment, int MaxTransfer)
{
    public const int DefaultMaxTransfer = 32 * 1024 * 1024;

    public static NodeLimits Default { get; } = new(1, 4096, DefaultMaxTransfer);
}
