namespace Strata.Block;

/// <summary>Block status through a backing chain, as <c>qemu-img map</c> shows it.</summary>
public static class ChainStatus
{
    /// <summary>The first extent at <paramref name="offset"/>, at most <paramref name="length"/> bytes.</summary>
    public static ValueTask<ChainExtent> GetAsync(IBlockNode top, long offset, long length, CancellationToken cancellationToken = default)
        => GetAboveAsync(top, int.MaxValue, offset, length, cancellationToken);

    /// <summary>
    /// As <see cref="GetAsync"/>, looking only at the layers above depth <paramref name="stopDepth"/>
    /// (a merge asks what lies above its base, and need not ask the base): what none of them
    /// allocates comes back with no node and that depth.
    /// </summary>
    public static async ValueTask<ChainExtent> GetAboveAsync(IBlockNode top, int stopDepth, long offset, long length, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(top);
        var node = top;
        int depth = 0;
        while (node is not null && depth < stopDepth)
        {
            if (offset >= node.Size)
            {
                // A backing file shorter than its overlay reads as zeroes past its end.
                return new ChainExtent(offset, length, BlockState.Zero, depth, null, -1);
            }

            var extent = await node.GetBlockStatusAsync(offset, Math.Min(length, node.Size - offset), cancellationToken);
            if (extent.IsAllocated)
            {
                return new ChainExtent(offset, extent.Length, extent.State, depth, node, extent.HostOffset);
            }

            length = extent.Length;
            node = node.Backing;
            depth++;
        }

        return new ChainExtent(offset, length, BlockState.Zero, depth, null, -1);
    }

    /// <summary>All extents of [offset, offset+length), adjacent ones of the same kind merged.</summary>
    public static IAsyncEnumerable<ChainExtent> EnumerateAsync(IBlockNode top, long offset, long length, CancellationToken cancellationToken = default)
        => EnumerateAboveAsync(top, int.MaxValue, offset, length, cancellationToken);

    /// <summary>As <see cref="EnumerateAsync"/>, looking only at the layers above depth <paramref name="stopDepth"/>.</summary>
    public static async IAsyncEnumerable<ChainExtent> EnumerateAboveAsync(IBlockNode top, int stopDepth, long offset, long length,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(top);
        long end = offset + length;
        ChainExtent? pending = null;
        while (offset < end)
        {
            var e = await GetAboveAsync(top, stopDepth, offset, end - offset, cancellationToken);
            if (pending is { } p && p.State == e.State && p.Depth == e.Depth && ReferenceEquals(p.Node, e.Node)
                && (p.HostOffset < 0 ? e.HostOffset < 0 : e.HostOffset == p.HostOffset + p.Length))
            {
                pending = p with { Length = p.Length + e.Length };
            }
            else
            {
                if (pending is { } done)
                {
                    yield return done;
                }

                pending = e;
            }

            offset = e.End;
        }

        if (pending is { } last)
        {
            yield return last;
        }
    }
}
