using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using Strata.Block;
using Strata.Block.Copy;

namespace Strata.Backup;

/// <summary>
/// The SHA-256 of fixed chunks of a disk as a chain reads it. A chunk that block status reports as
/// zeroes throughout is not read: its hash is the hash of that many zero bytes, so a sparse disk
/// costs what its data costs.
/// </summary>
public sealed class ChunkHashes
{
    // Zero chunks hash the same for every chunk of a length; shared by every run of this instance.
    private readonly ConcurrentDictionary<int, string> _zeroHashes = new();
    private readonly ChainView _view;
    private readonly long _size;

    public ChunkHashes(IBlockNode top, int chunkSize)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkSize);
        _view = ChainView.Whole(top);
        _size = top.Size;
        ChunkSize = chunkSize;
    }

    public int ChunkSize { get; }

    public int Count => BackupManifest.ChunkCount(_size, ChunkSize);

    /// <summary>The disk bytes of chunk <paramref name="index"/>.</summary>
    public BackupExtent Extent(int index)
    {
        long offset = (long)index * ChunkSize;
        return new BackupExtent(offset, Math.Min(ChunkSize, _size - offset));
    }

    /// <summary>The chunks that <paramref name="extents"/> touch, in order, each once.</summary>
    public IEnumerable<int> Touched(IEnumerable<BackupExtent> extents)
    {
        ArgumentNullException.ThrowIfNull(extents);
        int last = -1;
        foreach (var extent in extents)
        {
            int first = (int)(extent.Offset / ChunkSize);
            int end = (int)((extent.Offset + extent.Length - 1) / ChunkSize);
            for (int i = Math.Max(first, last + 1); i <= end; i++)
            {
                last = i;
                yield return i;
            }
        }
    }

    /// <summary>Hashes the given chunks, two at a time; <paramref name="done"/> hears each chunk's bytes.</summary>
    public async Task<IReadOnlyDictionary<int, string>> ComputeAsync(IEnumerable<int> chunks, Action<long>? done = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        var result = new ConcurrentDictionary<int, string>();
        var progressLock = new Lock(); // serializes the calls of done
        await Parallel.ForEachAsync(chunks, new ParallelOptions { MaxDegreeOfParallelism = 2, CancellationToken = cancellationToken }, async (index, token) =>
        {
            result[index] = await HashAsync(Extent(index), token);
            lock (progressLock)
            {
                done?.Invoke(Extent(index).Length);
            }
        });
        return result;
    }

    /// <summary>The hash of one run of the disk.</summary>
    public async ValueTask<string> HashAsync(BackupExtent extent, CancellationToken cancellationToken = default)
    {
        var first = await _view.GetStatusAsync(extent.Offset, extent.Length, cancellationToken);
        if (first.IsZero && first.Length >= extent.Length)
        {
            return _zeroHashes.GetOrAdd((int)extent.Length, length => Convert.ToHexStringLower(SHA256.HashData(new byte[length])));
        }

        int piece = Math.Min((int)extent.Length, _view.MaxTransfer);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(piece);
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            for (long at = extent.Offset; at < extent.Offset + extent.Length;)
            {
                int n = (int)Math.Min(piece, extent.Offset + extent.Length - at);
                await _view.ReadAsync(at, buffer.AsMemory(0, n), cancellationToken);
                hash.AppendData(buffer, 0, n);
                at += n;
            }

            return Convert.ToHexStringLower(hash.GetHashAndReset());
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
