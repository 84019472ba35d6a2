using System.Buffers;
using System.Runtime.ExceptionServices;
using Strata.Block.Bitmaps;
using Strata.Block.Copy;

namespace Strata.Block.Backup;

/// <summary>
/// What a backup's copy-before-write filter and its background copy share: the clusters still to
/// copy, the range lock that keeps the two apart, and the copy engine both copy through.
/// </summary>
/// <remarks>
/// Invariant: a cluster whose bit is set in <see cref="ToCopy"/> has not been written by the guest
/// since the job started, so the source still reads as it did then. Bits are only ever cleared, each
/// right after its cluster reached the target, under the exclusive lock of that cluster; a guest write
/// reaches the source only once every cluster it touches is clear. So every cluster reaches the target
/// at most once, with the data of the job's start (QEMU block/copy-before-write.c, block/block-copy.c).
/// </remarks>
internal sealed class BackupCopier : IDisposable
{
    private readonly RangeLock _locks = new();
    private readonly Action<long> _copied;
    private readonly CancellationTokenSource _failed = new();
    private Exception? _failure;

    public BackupCopier(BlockCopy copy, DirtyBitmap toCopy, Action<long> copied)
    {
        Copy = copy;
        ToCopy = toCopy;
        _copied = copied;
    }

    /// <summary>The engine copying from the drive's layers (as the job's view sees them) into the target.</summary>
    public BlockCopy Copy { get; }

    /// <summary>One bit per cluster still to copy, at the job's cluster size.</summary>
    public DirtyBitmap ToCopy { get; }

    /// <summary>Cancelled when a copy-before-write failed: the backup can no longer be right and fails.</summary>
    public CancellationToken Failed => _failed.Token;

    public void Dispose() => _failed.Dispose();

    /// <summary>Throws the copy-before-write failure, if one happened.</summary>
    public void ThrowIfFailed()
    {
        if (Volatile.Read(ref _failure) is { } failure)
        {
            ExceptionDispatchInfo.Throw(failure);
        }
    }

    /// <summary>
    /// Before a guest write, write-zeroes or discard of <c>[offset, offset + length)</c>: copies the
    /// old data of every cluster it touches that is still to copy. A failure does not fail the guest's
    /// request: the backup fails instead (<see cref="Failed"/>) and copies nothing more, and the guest goes on.
    /// </summary>
    public async ValueTask CopyBeforeWriteAsync(long offset, long length, CancellationToken cancellationToken)
    {
        if (length <= 0 || Volatile.Read(ref _failure) is not null || !AnyToCopy(offset, length))
        {
            return;
        }

        long cluster = ToCopy.Granularity;
        long start = offset / cluster * cluster;
        long end = Math.Min(ToCopy.DiskSize, (offset + length + cluster - 1) / cluster * cluster);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Copy.ChunkSize);
        try
        {
            await CopyRangeAsync(new CopyRange(start, end - start), Copy.ChunkSize, r => Copy.ChunkOf(r, buffer), cancellationToken);
        }
        catch (Exception e) when (e is BlockException or IOException && !cancellationToken.IsCancellationRequested)
        {
            if (Interlocked.CompareExchange(ref _failure, new BlockException(e is BlockException b ? b.Error : BlockError.Io,
                $"copy-before-write of {start}+{end - start} failed: {e.Message}"), null) is null)
            {
                _failed.Cancel();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Copies every cluster of <paramref name="range"/> (whole clusters) still to copy, under the
    /// range's exclusive lock, in pieces of at most <paramref name="maxPiece"/> bytes that
    /// <paramref name="chunkOf"/> turns into chunks; each piece's clusters are cleared once it is written.
    /// </summary>
    public async ValueTask CopyRangeAsync(CopyRange range, int maxPiece, Func<CopyRange, CopyChunk> chunkOf, CancellationToken cancellationToken)
    {
        using var held = await _locks.AcquireExclusiveAsync(range.Offset, range.Length, cancellationToken);
        for (long at = range.Offset; at < range.End;)
        {
            var (dirty, run) = ToCopy.GetRun(at, range.End - at);
            for (long piece = at; dirty && piece < at + run; piece += maxPiece)
            {
                var part = new CopyRange(piece, Math.Min(maxPiece, at + run - piece));
                await chunkOf(part).CopyAsync(cancellationToken);
                ToCopy.Clear(part.Offset, part.Length);
                _copied(part.Length);
            }

            at += run;
        }
    }

    private bool AnyToCopy(long offset, long length)
    {
        if (offset >= ToCopy.DiskSize)
        {
            return false;
        }

        var (dirty, run) = ToCopy.GetRun(offset, length);
        return dirty || run < Math.Min(length, ToCopy.DiskSize - offset);
    }
}
