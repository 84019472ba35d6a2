namespace Strata.Block.Backup;

/// <summary>
/// The filter a push backup puts on top of the drive while it runs: before a guest write,
/// write-zeroes or discard reaches the drive's layers, the old data of every cluster it touches that
/// the job has not copied yet goes to the target; then the request goes through. Reads, flushes and
/// block status go straight to the layers below. The target thus receives the disk exactly as it
/// was when the job started (QEMU's copy-before-write filter).
/// </summary>
/// <remarks>
/// Installed and removed under a drain of the drive's gate, so the job's point in time lies between
/// two guest requests. A failed copy does not fail the guest's request: the backup fails and the
/// guest goes on (QEMU's on-cbw-error=break-snapshot). The filter owns neither the layers below nor
/// the target.
/// </remarks>
public sealed class CopyBeforeWriteNode : IBlockNode
{
    private readonly BackupCopier _copier;

    internal CopyBeforeWriteNode(IBlockNode source, BackupCopier copier)
    {
        Source = source;
        _copier = copier;
    }

    /// <summary>The drive's top as it was when the filter went in.</summary>
    public IBlockNode Source { get; }

    public string DriverName => "copy-before-write";

    public string? FileName => Source.FileName;

    public long Size => Source.Size;

    public NodeCapabilities Capabilities => Source.Capabilities & ~NodeCapabilities.Resize;

    public NodeLimits Limits => Source.Limits;

    public IBlockNode? Backing => Source.Backing;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        => Source.ReadAsync(offset, buffer, cancellationToken);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        await _copier.CopyBeforeWriteAsync(offset, data.Length, cancellationToken);
        await Source.WriteAsync(offset, data, flags, cancellationToken);
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
    {
        await _copier.CopyBeforeWriteAsync(offset, length, cancellationToken);
        await Source.WriteZeroesAsync(offset, length, flags, cancellationToken);
    }

    public async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await _copier.CopyBeforeWriteAsync(offset, length, cancellationToken);
        await Source.DiscardAsync(offset, length, cancellationToken);
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => Source.FlushAsync(cancellationToken);

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        => Source.GetBlockStatusAsync(offset, length, cancellationToken);

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
        => throw BlockException.NotSupported("a disk cannot be resized while it is being backed up");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
