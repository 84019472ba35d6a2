using Strata.Block;

namespace Strata.TestKit;

/// <summary>A filter that passes everything to its inner node; tests override what they observe.</summary>
public class DelegatingNode(IBlockNode inner) : IBlockNode
{
    protected IBlockNode Inner { get; } = inner ?? throw new ArgumentNullException(nameof(inner));

    public virtual string DriverName => Inner.DriverName;

    public string? FileName => Inner.FileName;

    public long Size => Inner.Size;

    public NodeCapabilities Capabilities => Inner.Capabilities;

    public virtual NodeLimits Limits => Inner.Limits;

    public virtual IBlockNode? Backing => Inner.Backing;

    public virtual ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        => Inner.ReadAsync(offset, buffer, cancellationToken);

    public virtual ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        => Inner.WriteAsync(offset, data, flags, cancellationToken);

    public virtual ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
        => Inner.WriteZeroesAsync(offset, length, flags, cancellationToken);

    public virtual ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
        => Inner.DiscardAsync(offset, length, cancellationToken);

    public virtual ValueTask FlushAsync(CancellationToken cancellationToken = default) => Inner.FlushAsync(cancellationToken);

    public virtual ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        => Inner.GetBlockStatusAsync(offset, length, cancellationToken);

    public virtual ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default) => Inner.ResizeAsync(newSize, cancellationToken);

    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return Inner.DisposeAsync();
    }
}
