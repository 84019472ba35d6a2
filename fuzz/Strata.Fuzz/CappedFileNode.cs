using Strata.Block;
using Strata.TestKit;

namespace Strata.Fuzz;

/// <summary>
/// The image file of the qcow2 target: a memory node that grows like a sparse file up to a cap, and
/// past it fails as a full file system does (ENOSPC), so a header that asks for a huge file costs a
/// clean error rather than the fuzzer's memory. Opened for a read-only image, any change to it is a
/// failure: a read-only open must never write its file. Every call first checks the run's
/// cancellation, so a loop over on-disk pointers that never ends stops at its next I/O, with its stack.
/// </summary>
internal sealed class CappedFileNode(MemoryNode inner, long cap, bool readOnly, CancellationToken run) : DelegatingNode(inner)
{
    public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        run.ThrowIfCancellationRequested();
        return base.ReadAsync(offset, buffer, cancellationToken);
    }

    public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        Changing("write");
        return base.WriteAsync(offset, data, flags, cancellationToken);
    }

    public override ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
    {
        Changing("write zeroes");
        return base.WriteZeroesAsync(offset, length, flags, cancellationToken);
    }

    public override ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        Changing("discard");
        return base.DiscardAsync(offset, length, cancellationToken);
    }

    public override ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        run.ThrowIfCancellationRequested();
        return base.FlushAsync(cancellationToken);
    }

    public override ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        run.ThrowIfCancellationRequested();
        return base.GetBlockStatusAsync(offset, length, cancellationToken);
    }

    public override ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
    {
        Changing("resize");
        return newSize > cap
            ? ValueTask.FromException(new BlockException(BlockError.NoSpace, $"the file would grow to {newSize} bytes, past the fuzzer's {cap}"))
            : base.ResizeAsync(newSize, cancellationToken);
    }

    private void Changing(string what)
    {
        run.ThrowIfCancellationRequested();
        if (readOnly)
        {
            throw new FuzzFailure($"an image opened read-only tried to {what} its file");
        }
    }
}
