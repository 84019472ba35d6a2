using System.Buffers;
using Strata.Block;

namespace Strata.Cli.Img;

/// <summary>
/// The sparse copy loop shared by convert and commit: walks block status, skips runs that read as
/// zeroes, reads data in large sequential chunks and skips chunks that turn out all-zero.
/// </summary>
public static class ImageCopy
{
    /// <summary>Large enough to keep a disk streaming, small enough to stay out of the large-object heap churn.</summary>
    public const int ChunkSize = 4 * 1024 * 1024;

    /// <summary>
    /// Copies the runs of [0, <paramref name="length"/>) that <paramref name="select"/> accepts from
    /// <paramref name="source"/> (as its whole chain reads) to <paramref name="target"/>.
    /// </summary>
    /// <param name="select">Which runs to copy (commit copies only those above the base).</param>
    /// <param name="targetIsZero">The target already reads as zeroes, so zero runs need no write.</param>
    public static async Task CopyAsync(IBlockNode source, IBlockNode target, long length, Func<ChainExtent, bool> select,
        bool targetIsZero, Action<double> progress, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(select);
        ArgumentNullException.ThrowIfNull(progress);
        int chunk = Math.Min(ChunkSize, Math.Min(source.Limits.MaxTransfer, target.Limits.MaxTransfer));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(chunk);
        byte[] spare = ArrayPool<byte>.Shared.Rent(chunk);
        try
        {
            long offset = 0;
            while (offset < length)
            {
                var extent = await ChainStatus.GetAsync(source, offset, length - offset, cancellationToken);
                if (select(extent))
                {
                    if (extent.IsZero)
                    {
                        if (!targetIsZero)
                        {
                            await target.WriteZeroesAsync(extent.Offset, extent.Length, ZeroFlags.None, cancellationToken);
                        }
                    }
                    else
                    {
                        await CopyDataAsync(source, target, extent.Offset, extent.Length, buffer.AsMemory(0, chunk), spare.AsMemory(0, chunk), targetIsZero, cancellationToken);
                    }
                }

                offset = extent.End;
                progress(length == 0 ? 100 : offset * 100.0 / length);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(spare);
        }
    }

    /// <summary>
    /// Copies one data run with two buffers: the next chunk is read on the thread pool while the
    /// current one is written, so reading and writing overlap (nodes accept concurrent requests).
    /// </summary>
    private static async Task CopyDataAsync(IBlockNode source, IBlockNode target, long offset, long length, Memory<byte> buffer,
        Memory<byte> spare, bool targetIsZero, CancellationToken cancellationToken)
    {
        long end = offset + length;
        int n = (int)Math.Min(buffer.Length, end - offset);
        await source.ReadAsync(offset, buffer[..n], cancellationToken);
        while (true)
        {
            long nextOffset = offset + n;
            int nextLength = (int)Math.Min(spare.Length, end - nextOffset);
            var nextBuffer = spare;
            Task? readAhead = nextLength > 0
                ? Task.Run(() => source.ReadAsync(nextOffset, nextBuffer[..nextLength], cancellationToken).AsTask(), cancellationToken)
                : null;
            try
            {
                var data = buffer[..n];
                if (!data.Span.ContainsAnyExcept((byte)0))
                {
                    if (!targetIsZero)
                    {
                        await target.WriteZeroesAsync(offset, n, ZeroFlags.None, cancellationToken);
                    }
                }
                else
                {
                    await target.WriteAsync(offset, data, WriteFlags.None, cancellationToken);
                }
            }
            finally
            {
                // Never leave a read running into a buffer that is about to be returned to the pool.
                if (readAhead is not null)
                {
                    await readAhead.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
            }

            if (readAhead is null)
            {
                return;
            }

            await readAhead;
            (buffer, spare) = (spare, buffer);
            offset = nextOffset;
            n = nextLength;
        }
    }
}
