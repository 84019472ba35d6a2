using Strata.Block;

namespace Strata.TestKit;

/// <summary>One request of a workload; <see cref="Data"/> is set for writes only.</summary>
public sealed record DiskOp(DiskOpKind Kind, long Offset, long Length, byte[]? Data = null)
{
    public long End => Offset + Length;

    public ValueTask ApplyAsync(IBlockNode node, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        return Kind switch
        {
            DiskOpKind.Write => node.WriteAsync(Offset, Data, WriteFlags.None, cancellationToken),
            DiskOpKind.WriteZeroes => node.WriteZeroesAsync(Offset, Length, ZeroFlags.None, cancellationToken),
            DiskOpKind.WriteZeroesUnmap => node.WriteZeroesAsync(Offset, Length, ZeroFlags.MayUnmap, cancellationToken),
            DiskOpKind.Discard => node.DiscardAsync(Offset, Length, cancellationToken),
            DiskOpKind.Flush => node.FlushAsync(cancellationToken),
            _ => throw new ArgumentOutOfRangeException(nameof(node), Kind, "unknown op"),
        };
    }

    public override string ToString() => Kind == DiskOpKind.Flush ? "flush" : $"{Kind} [{Offset}, +{Length})";
}
