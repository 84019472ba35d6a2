using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using Strata.Block;
using Strata.Block.Copy;

namespace Strata.Backup;

/// <summary>
/// The SHA-256 of fixed chunks of a disk as a chain reads it (docs/backup.md, "Chunk hashes"). With
/// leaves (manifest version 2), a chunk's hash is the SHA-256 of the concatenated SHA-256 digests of
/// its leaves, fixed runs of <see cref="LeafSize"/> bytes (the last of the disk may be short), so a
/// chunk whose leaves are known can be hashed again from only the leaves that changed. Without
/// leaves (version 1) it is the SHA-256 of the chunk's bytes. A run that block status reports as
/// zeroes is not read: its digest is that of zero bytes, so a sparse disk costs what its data costs.
/// </summary>
public sealed class ChunkHashes
{
    /// <summary>Bytes of one leaf's digest.</summary>
    public const int DigestSize = 32;

    // Zero runs hash the same for every run of a length; shared by every run of this instance.
    private readonly ConcurrentDictionary<int, byte[]> _zeroDigests = new();
    private readonly ChainView _view;
    private readonly long _size;
    private long _bytesRead;

    /// <param name="leafSize">0: version 1, the chunk's bytes hashed whole; otherwise a divisor of <paramref name="chunkSize"/>.</param>
    public ChunkHashes(IBlockNode top, int chunkSize, int leafSize = 0)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkSize);
        ArgumentOutOfRangeException.ThrowIfNegative(leafSize);
        if (leafSize > 0 && chunkSize % leafSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(leafSize), "a leaf must divide the chunk");
        }

        _view = ChainView.Whole(top);
        _size = top.Size;
        ChunkSize = chunkSize;
        LeafSize = leafSize;
    }

    public int ChunkSize { get; }

    /// <summary>Bytes per leaf; 0 without leaves.</summary>
    public int LeafSize { get; }

    public int Count => BackupManifest.ChunkCount(_size, ChunkSize);

    /// <summary>Bytes of the disk (the chain's top).</summary>
    public long DiskSize => _size;

    /// <summary>Leaves of the whole disk.</summary>
    public long LeafCount => LeafSize == 0 ? 0 : (_size + LeafSize - 1) / LeafSize;

    /// <summary>Bytes read from the disk so far (zero runs are not read).</summary>
    public long BytesRead => Interlocked.Read(ref _bytesRead);

    /// <summary>Bytes of leaf <paramref name="leaf"/>: <see cref="LeafSize"/>, or fewer for the disk's last.</summary>
    public int LeafLength(long leaf) => (int)Math.Min(LeafSize, _size - (leaf * LeafSize));

    /// <summary>The disk bytes of chunk <paramref name="index"/>.</summary>
    public BackupExtent Extent(int index)
    {
        long offset = (long)index * ChunkSize;
        return new BackupExtent(offset, Math.Min(ChunkSize, _size - offset));
    }

    /// <summary>The leaves of chunk <paramref name="index"/>: the first one's number and how many.</summary>
    public (long First, int Count) Leaves(int index)
    {
        var extent = Extent(index);
        return (extent.Offset / LeafSize, (int)((extent.Length + LeafSize - 1) / LeafSize));
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
        await ForEachAsync(chunks, done, async (index, token) =>
        {
            result[index] = LeafSize == 0 ? await HashAsync(Extent(index), token) : Combine(await LeafDigestsAsync(index, token));
            return Extent(index).Length;
        }, cancellationToken);
        return result;
    }

    /// <summary>Runs <paramref name="work"/> on each chunk, two at a time; <paramref name="done"/> hears the bytes each returns, one call at a time.</summary>
    public static async Task ForEachAsync(IEnumerable<int> chunks, Action<long>? done, Func<int, CancellationToken, ValueTask<long>> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        var progressLock = new Lock(); // serializes the calls of done
        await Parallel.ForEachAsync(chunks, new ParallelOptions { MaxDegreeOfParallelism = 2, CancellationToken = cancellationToken }, async (index, token) =>
        {
            long bytes = await work(index, token);
            lock (progressLock)
            {
                done?.Invoke(bytes);
            }
        });
    }

    /// <summary>The digests of every leaf of chunk <paramref name="index"/>, read from the disk.</summary>
    public async ValueTask<byte[]> LeafDigestsAsync(int index, CancellationToken cancellationToken = default)
    {
        var (first, count) = Leaves(index);
        var digests = new byte[count * DigestSize];
        await HashLeavesAsync(first, count, digests, cancellationToken);
        return digests;
    }

    /// <summary>
    /// Reads leaves <paramref name="first"/> to <paramref name="first"/> + <paramref name="count"/> - 1
    /// and writes their digests, in order, into <paramref name="digests"/>. A leaf inside a zero run is
    /// not read; data is read in runs of whole leaves, as large as a request may be.
    /// </summary>
    public async ValueTask HashLeavesAsync(long first, int count, Memory<byte> digests, CancellationToken cancellationToken = default)
    {
        if (LeafSize == 0)
        {
            throw new InvalidOperationException("these chunk hashes have no leaves");
        }

        long end = Math.Min(_size, (first + count) * LeafSize);
        int piece = Math.Max(LeafSize, Math.Min(_view.MaxTransfer, 4 << 20) / LeafSize * LeafSize);
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(piece, end - first * LeafSize));
        try
        {
            for (long at = first * LeafSize; at < end;)
            {
                long left = Math.Min(piece, end - at);
                var status = await _view.GetStatusAsync(at, left, cancellationToken);
                // Whole leaves of zeroes, or the zero run up to the end of the range.
                long zeroes = !status.IsZero ? 0 : status.Length >= left ? left : status.Length / LeafSize * LeafSize;
                if (zeroes > 0)
                {
                    for (long leaf = at; leaf < at + zeroes; leaf += LeafSize)
                    {
                        ZeroDigest((int)Math.Min(LeafSize, end - leaf)).CopyTo(digests.Span[(int)((leaf / LeafSize - first) * DigestSize)..]);
                    }

                    at += zeroes;
                    continue;
                }

                // Data (or a zero run shorter than a leaf): read whole leaves up to the run's end.
                int n = (int)Math.Min(left, status.IsZero ? LeafSize : (status.Length + LeafSize - 1) / LeafSize * LeafSize);
                await _view.ReadAsync(at, buffer.AsMemory(0, n), cancellationToken);
                Interlocked.Add(ref _bytesRead, n);
                for (int off = 0; off < n; off += LeafSize)
                {
                    int length = Math.Min(LeafSize, n - off);
                    SHA256.HashData(buffer.AsSpan(off, length), digests.Span[(int)(((at + off) / LeafSize - first) * DigestSize)..]);
                }

                at += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A chunk's hash from its leaves' digests: the SHA-256 of their concatenation, lowercase hex.</summary>
    public static string Combine(ReadOnlySpan<byte> digests) => Convert.ToHexStringLower(SHA256.HashData(digests));

    /// <summary>The hash of one run of the disk, its bytes hashed whole (version 1).</summary>
    public async ValueTask<string> HashAsync(BackupExtent extent, CancellationToken cancellationToken = default)
    {
        var first = await _view.GetStatusAsync(extent.Offset, extent.Length, cancellationToken);
        if (first.IsZero && first.Length >= extent.Length)
        {
            return Convert.ToHexStringLower(ZeroDigest((int)extent.Length));
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
                Interlocked.Add(ref _bytesRead, n);
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

    /// <summary>The SHA-256 of <paramref name="length"/> zero bytes (cached: a zero leaf's digest is taken, never computed again).</summary>
    internal byte[] ZeroDigest(int length) => _zeroDigests.GetOrAdd(length, n => SHA256.HashData(new byte[n]));
}
