using Strata.Block;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>A disk with a bad region: every read that reaches <paramref name="failFrom"/> or beyond fails with an I/O error.</summary>
public sealed class ReadFailingNode(IBlockNode inner, long failFrom) : DelegatingNode(inner)
{
    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        offset + buffer.Length > failFrom
            ? ValueTask.FromException(new BlockException(BlockError.Io, $"injected read error at {failFrom}"))
            : base.ReadAsync(offset, buffer, cancellationToken);
}
