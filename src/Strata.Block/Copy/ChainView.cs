namespace Strata.Block.Copy;

/// <summary>
/// What a copy reads: the chain from <see cref="Top"/> down as a guest sees it, or only the layers
/// above depth <see cref="StopDepth"/> (a commit copies what lies above its base). A missing top
/// reads as zeroes everywhere (a rebase onto no backing file), and so does every byte past a
/// layer's end (<see cref="BackingReader"/>).
/// </summary>
public readonly record struct ChainView(IBlockNode? Top, int StopDepth = int.MaxValue)
{
    /// <summary>The whole chain of <paramref name="top"/>: what no layer allocates reads as zeroes and is copied as such.</summary>
    public static ChainView Whole(IBlockNode? top) => new(top);

    /// <summary>The layers of <paramref name="top"/>'s chain above <paramref name="baseNode"/>, which must lie below it.</summary>
    public static ChainView Above(IBlockNode top, IBlockNode baseNode)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentNullException.ThrowIfNull(baseNode);
        int depth = top.DepthOf(baseNode);
        return depth > 0 ? new ChainView(top, depth) : throw BlockException.Invalid("the base is not below the top in the backing chain");
    }

    /// <summary>True when the view reaches the bottom of the chain: an unallocated run then reads as zeroes.</summary>
    public bool IsWholeChain => StopDepth == int.MaxValue;

    /// <summary>The largest read the view accepts in one request.</summary>
    public int MaxTransfer => Top?.Limits.MaxTransfer ?? int.MaxValue;

    /// <summary>The first extent at <paramref name="offset"/> as the view sees it (no node: none of its layers allocates it).</summary>
    public ValueTask<ChainExtent> GetStatusAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        Top is null
            ? ValueTask.FromResult(new ChainExtent(offset, length, BlockState.Zero, 0, null, -1))
            : ChainStatus.GetAboveAsync(Top, StopDepth, offset, length, cancellationToken);

    /// <summary>All extents of the range as the view sees them, adjacent ones of the same kind merged.</summary>
    public async IAsyncEnumerable<ChainExtent> EnumerateAsync(long offset, long length,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Top is null)
        {
            yield return await GetStatusAsync(offset, length, cancellationToken);
            yield break;
        }

        await foreach (var extent in ChainStatus.EnumerateAboveAsync(Top, StopDepth, offset, length, cancellationToken))
        {
            yield return extent;
        }
    }

    /// <summary>Reads what the chain reads (all its layers: a bounded view is only read where its layers allocate).</summary>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        BackingReader.ReadAsync(Top, offset, buffer, cancellationToken);
}
