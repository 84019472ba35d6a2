namespace Strata.Block;

/// <summary>
/// A run of guest bytes as the whole backing chain sees it: <see cref="Depth"/> is the index of the
/// layer that decides the content (0 = the top), <see cref="Node"/> that layer, or null when no layer
/// allocates the run (then it reads as zeroes and Depth is the chain length).
/// </summary>
public readonly record struct ChainExtent(long Offset, long Length, BlockState State, int Depth, IBlockNode? Node, long HostOffset)
{
    public long End => Offset + Length;

    public bool IsPresent => Node is not null;

    public bool IsZero => (State & BlockState.Zero) != 0 || Node is null;

    public bool IsData => (State & BlockState.Data) != 0;
}
