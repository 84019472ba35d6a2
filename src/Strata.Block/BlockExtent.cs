namespace Strata.Block;

/// <summary>
/// A run of guest bytes with one <see cref="BlockState"/>; <see cref="HostOffset"/> is the offset in
/// the node's file where the data is stored contiguously, or -1.
/// </summary>
public readonly record struct BlockExtent(long Offset, long Length, BlockState State, long HostOffset = -1)
{
    public long End => Offset + Length;

    public bool IsAllocated => (State & BlockState.Allocated) != 0;

    public bool IsZero => (State & BlockState.Zero) != 0;

    public bool IsData => (State & BlockState.Data) != 0;
}
