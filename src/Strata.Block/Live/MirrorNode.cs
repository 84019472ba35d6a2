namespace Strata.Block.Live;

/// <summary>
/// The filter a live merge puts on top of the drive: reads come from the overlay, every write goes
/// to the overlay and then to the base, so the base never falls behind the guest and the merge only
/// has to copy what was in the overlay when it started (it converges however fast the guest writes).
/// </summary>
/// <remarks>
/// Every modifying request holds an exclusive <see cref="RangeLock"/> on its range, the same lock the
/// merge's copier takes, so a chunk is never overwritten between the copier's read and its write,
/// and two overlapping guest writes land in the same order in both images.
/// </remarks>
public sealed class MirrorNode(IBlockNode overlay, IBlockNode baseNode, RangeLock locks) : IBlockNode
{
    public IBlockNode Overlay { get; } = overlay ?? throw new ArgumentNullException(nameof(overlay));

    public IBlockNode Base { get; } = baseNode ?? throw new ArgumentNullException(nameof(baseNode));

    public string DriverName => "mirror";

    public string? FileName => Overlay.FileName;

    public long Size => Overlay.Size;

    public NodeCapabilities Capabilities => Overlay.Capabilities & ~NodeCapabilities.Resize;

    public NodeLimits Limits => Overlay.Limits;

    public IBlockNode? Backing => Overlay.Backing;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        => Overlay.ReadAsync(offset, buffer, cancellationToken);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        using var held = await locks.AcquireExclusiveAsync(offset, data.Length, cancellationToken);
        await Overlay.WriteAsync(offset, data, flags, cancellationToken);
        await Base.WriteAsync(offset, data, flags, cancellationToken);
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
    {
        using var held = await locks.AcquireExclusiveAsync(offset, length, cancellationToken);
        await Overlay.WriteZeroesAsync(offset, length, flags, cancellationToken);
        await Base.WriteZeroesAsync(offset, length, flags & ~ZeroFlags.NoFallback, cancellationToken);
    }

    public async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        // A discard leaves unspecified content, which could differ between the two images and change
        // under the guest at the pivot; during a merge it becomes a write of zeroes to both instead.
        using var held = await locks.AcquireExclusiveAsync(offset, length, cancellationToken);
        await Overlay.WriteZeroesAsync(offset, length, ZeroFlags.MayUnmap, cancellationToken);
        await Base.WriteZeroesAsync(offset, length, ZeroFlags.MayUnmap, cancellationToken);
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        await Overlay.FlushAsync(cancellationToken);
        await Base.FlushAsync(cancellationToken);
    }

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        => Overlay.GetBlockStatusAsync(offset, length, cancellationToken);

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
        => throw BlockException.NotSupported("a disk cannot be resized while it is being merged");

    /// <summary>
    /// The mirror owns neither image: the merge decides which one survives. A drive closed while the
    /// mirror is still its root closes the chain behind it (the overlay, and the base below it).
    /// </summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
