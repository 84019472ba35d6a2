using System.Buffers;
using System.Security.Cryptography;
using Strata.Block.Copy;

namespace Strata.Backup;

/// <summary>
/// The leaf digests of a new point taken from the copy's own buffers, as the copy writes them
/// (<see cref="ICopyObserver"/>): a leaf the copy covers whole is hashed from the bytes written to
/// the target (a zero run from the zero leaf's digest) and its digest goes straight into the point's
/// leaf file, so the hashing after the copy reads back only the leaves the copy did not cover: those
/// an extent starts or ends inside. A leaf inside the extents that the copy covers in several runs
/// (a copy chunk or a zero run ends inside it) is put together in memory (<see cref="PartialLeaf"/>)
/// until its last byte arrives. Only leaves inside the extents are put together, so each of them
/// completes during the copy, and few wait at a time: the workers take the chunks in disk order, and
/// the zero runs the plan left out are heard before any chunk.
/// </summary>
/// <remarks>
/// The copy's workers call at once: digests of distinct leaves go to distinct places of the file
/// (positional writes), the covered set is one bit per leaf set by an interlocked or, and the leaves
/// being put together are guarded by a lock. <see cref="IsCovered"/> is read after the copy ended.
/// </remarks>
internal sealed class CopiedLeaves : ICopyObserver, IDisposable
{
    /// <summary>Digests written to the leaf file in one request at most.</summary>
    private const int DigestBatch = 1024;

    private readonly ChunkHashes _hashes;
    private readonly LeafDigestFile _file;
    private readonly long[] _extentStarts;
    private readonly IReadOnlyList<BackupExtent> _extents;
    private readonly long _size;
    private readonly int _leaf;
    private readonly ulong[] _covered;

    // Protects _partial (and each PartialLeaf in it).
    private readonly Lock _partialLock = new();
    private readonly Dictionary<long, PartialLeaf> _partial = [];
    private long _bytesHashed;

    /// <param name="extents">What the copy covers: in disk order, not overlapping.</param>
    public CopiedLeaves(ChunkHashes hashes, IReadOnlyList<BackupExtent> extents, LeafDigestFile file)
    {
        _hashes = hashes;
        _file = file;
        _extents = extents;
        _extentStarts = [.. extents.Select(e => e.Offset)];
        _size = hashes.DiskSize;
        _leaf = hashes.LeafSize;
        _covered = new ulong[(hashes.LeafCount + 63) / 64];
    }

    /// <summary>Bytes of data hashed from the copy's buffers (zero runs are not hashed).</summary>
    public long BytesHashed => Interlocked.Read(ref _bytesHashed);

    public void Data(long offset, ReadOnlySpan<byte> bytes) => Take(offset, bytes.Length, bytes, zero: false);

    public void Zeroes(long offset, long length) => Take(offset, length, default, zero: true);

    /// <summary>True when the copy gave leaf <paramref name="leaf"/>'s digest (read once the copy ended).</summary>
    public bool IsCovered(long leaf) => (Volatile.Read(ref _covered[leaf / 64]) & (1UL << (int)(leaf % 64))) != 0;

    /// <summary>True when every byte of leaf <paramref name="leaf"/> lies inside the extents: the copy will cover it.</summary>
    public bool IsInside(long leaf)
    {
        long start = leaf * _leaf;
        long end = start + _hashes.LeafLength(leaf);
        int i = Array.BinarySearch(_extentStarts, start);
        i = i >= 0 ? i : ~i - 1;
        for (long reached = start; i >= 0 && i < _extents.Count && _extents[i].Offset <= reached; i++)
        {
            reached = Math.Max(reached, _extents[i].Offset + _extents[i].Length);
            if (reached >= end)
            {
                return true;
            }
        }

        return false;
    }

    public void Dispose()
    {
        lock (_partialLock)
        {
            foreach (var partial in _partial.Values)
            {
                partial.Dispose();
            }

            _partial.Clear();
        }
    }

    /// <summary>One run the target now reads: its whole leaves hashed at once, the leaves it starts or ends inside put together.</summary>
    private void Take(long offset, long length, ReadOnlySpan<byte> bytes, bool zero)
    {
        if (length <= 0)
        {
            return;
        }

        long end = offset + length;
        long first = offset / _leaf;
        long last = (end - 1) / _leaf;
        long wholeFirst = offset % _leaf == 0 ? first : first + 1;
        long wholeEnd = end % _leaf == 0 || end == _size ? last + 1 : last;
        if (first < wholeFirst)
        {
            Piece(first, offset, Math.Min(end, (first * _leaf) + _leaf), bytes, zero);
        }

        if (wholeFirst < wholeEnd)
        {
            Whole(wholeFirst, wholeEnd, zero ? default : bytes[(int)((wholeFirst * _leaf) - offset)..], zero);
        }

        if (last >= wholeEnd && last >= wholeFirst)
        {
            Piece(last, last * _leaf, end, zero ? default : bytes[(int)((last * _leaf) - offset)..], zero);
        }
    }

    /// <summary>Leaves <paramref name="first"/> to <paramref name="end"/> - 1, whole: <paramref name="bytes"/> starts at the first.</summary>
    private void Whole(long first, long end, ReadOnlySpan<byte> bytes, bool zero)
    {
        byte[] digests = ArrayPool<byte>.Shared.Rent((int)Math.Min(DigestBatch, end - first) * ChunkHashes.DigestSize);
        try
        {
            for (long batch = first; batch < end; batch += DigestBatch)
            {
                int count = (int)Math.Min(DigestBatch, end - batch);
                for (int i = 0; i < count; i++)
                {
                    long leaf = batch + i;
                    var digest = digests.AsSpan(i * ChunkHashes.DigestSize, ChunkHashes.DigestSize);
                    int leafLength = _hashes.LeafLength(leaf);
                    if (zero)
                    {
                        _hashes.ZeroDigest(leafLength).CopyTo(digest);
                    }
                    else
                    {
                        SHA256.HashData(bytes.Slice((int)((leaf - first) * _leaf), leafLength), digest);
                        Interlocked.Add(ref _bytesHashed, leafLength);
                    }
                }

                _file.Write(batch, digests.AsSpan(0, count * ChunkHashes.DigestSize));
                for (long leaf = batch; leaf < batch + count; leaf++)
                {
                    Cover(leaf);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(digests);
        }
    }

    /// <summary>
    /// The part [<paramref name="start"/>, <paramref name="end"/>) of leaf <paramref name="leaf"/>, whose
    /// bytes (data only) begin <paramref name="bytes"/>: kept when the leaf lies inside the extents,
    /// hashed once its last byte arrived. A leaf outside them is read back after the copy.
    /// </summary>
    private void Piece(long leaf, long start, long end, ReadOnlySpan<byte> bytes, bool zero)
    {
        if (!IsInside(leaf))
        {
            return;
        }

        int leafLength = _hashes.LeafLength(leaf);
        int at = (int)(start - (leaf * _leaf));
        int count = (int)(end - start);
        byte[]? digest = null;
        lock (_partialLock)
        {
            if (!_partial.TryGetValue(leaf, out var partial))
            {
                _partial[leaf] = partial = new PartialLeaf(leafLength);
            }

            if (zero)
            {
                partial.AddZeroes(at, count);
            }
            else
            {
                partial.Add(at, bytes[..count]);
            }

            if (partial.IsComplete)
            {
                digest = partial.Digest(_hashes.ZeroDigest(leafLength));
                _partial.Remove(leaf);
                partial.Dispose();
            }
        }

        if (!zero)
        {
            Interlocked.Add(ref _bytesHashed, count);
        }

        if (digest is not null)
        {
            _file.Write(leaf, digest);
            Cover(leaf);
        }
    }

    private void Cover(long leaf) => Interlocked.Or(ref _covered[leaf / 64], 1UL << (int)(leaf % 64));
}
