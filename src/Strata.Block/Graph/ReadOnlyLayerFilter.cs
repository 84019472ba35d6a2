namespace Strata.Block.Graph;

/// <summary>
/// A read-only window on one layer of a drive: reads and block status go to the layer (and through
/// it to its backing chain), every change is refused. It is what a <see cref="FrozenLayerView"/>'s
/// gate points at, so the view's own gate reports itself read-only and no request through it can
/// reach the layer's writing path, whatever the layer's file was opened for.
/// </summary>
/// <remarks>
/// Transparent to block status: <see cref="Backing"/> is the layer's backing node and the status is
/// the layer's own, so a chain walk from the filter sees exactly the layer's chain (the allocation
/// depths a client reads are those of the layer, as through <see cref="Live.MirrorNode"/>). The filter
/// owns nothing: the drive's chain closes the layer.
/// </remarks>
public sealed class ReadOnlyLayerFilter(IBlockNode layer) : IBlockNode
{
    private const NodeCapabilities Changes = NodeCapabilities.Fua | NodeCapabilities.Discard | NodeCapabilities.WriteZeroes
        | NodeCapabilities.FastZero | NodeCapabilities.Resize;

    public IBlockNode Layer { get; } = layer ?? throw new ArgumentNullException(nameof(layer));

    public string DriverName => Layer.DriverName;

    public string? FileName => Layer.FileName;

    public long Size => Layer.Size;

    public NodeCapabilities Capabilities => (Layer.Capabilities & ~Changes) | NodeCapabilities.ReadOnly;

    public NodeLimits Limits => Layer.Limits;

    public IBlockNode? Backing => Layer.Backing;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Layer.ReadAsync(offset, buffer, cancellationToken);

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        Layer.GetBlockStatusAsync(offset, length, cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default) =>
        throw Refused();

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default) =>
        throw Refused();

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) => throw Refused();

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default) => throw Refused();

    /// <summary>Nothing was written through the filter, so nothing of it needs to reach the disk.</summary>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private BlockException Refused() => BlockException.ReadOnly($"'{FileName ?? DriverName}' is a frozen point-in-time view: read-only");
}
