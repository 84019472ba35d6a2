namespace Strata.Backup;

/// <summary>
/// The chunk hashes of a new point: made before the copy, computed after it. A point without leaves
/// (version 1) reads back every chunk it hashes: all of them for a full point, the touched ones for
/// an incremental. With leaves, the copy hands over the digest of every leaf it covers whole, from
/// its own buffers (<see cref="Observer"/>, <see cref="CopiedLeaves"/>), and only the others are read
/// back from the new chain: the leaves an extent starts or ends inside. An incremental takes the
/// other leaves of a touched chunk from the previous point's leaf file, but only when they combine
/// into the hash the previous manifest records; otherwise every leaf of that chunk the copy did not
/// cover is read back. So the cost follows the dirty data, and verify never depends on the leaf file.
/// </summary>
/// <remarks>
/// The previous digests are checked here, before the copy, because the copy's digests overwrite
/// them in the same file as it goes. Either way the manifest and the leaf file come out the same,
/// bit for bit: a digest from the copy is that of the bytes the copy wrote, which the new chain reads.
/// </remarks>
internal sealed class PointHashing : IDisposable
{
    private readonly ChunkHashes _hashes;
    private readonly BackupManifest? _last;
    private readonly LeafDigestFile? _leaves;

    /// <summary>The leaves the extents reach, as runs of leaf numbers split at chunk boundaries, by chunk.</summary>
    private readonly Dictionary<int, List<(long First, int Count)>> _dirty;

    /// <summary>The touched chunks whose leaves in the previous point's leaf file combine into the previous manifest's hash.</summary>
    private readonly HashSet<int> _vouched = [];

    /// <param name="leaves">The new point's leaf file, begun; null without leaves.</param>
    /// <param name="fromCopy">Take the digests of the leaves the copy covers from its buffers (with leaves only); false: read every leaf back.</param>
    public PointHashing(ChunkHashes hashes, BackupManifest? last, IReadOnlyList<BackupExtent> extents, bool incremental, LeafDigestFile? leaves, bool fromCopy)
    {
        if (hashes.LeafSize > 0)
        {
            ArgumentNullException.ThrowIfNull(leaves);
        }

        _hashes = hashes;
        _last = last;
        _leaves = leaves;
        Chunks = incremental ? [.. hashes.Touched(extents)] : [.. Enumerable.Range(0, hashes.Count)];
        _dirty = incremental && hashes.LeafSize > 0 ? DirtyLeaves(hashes, extents) : [];
        if (incremental && leaves is not null)
        {
            Vouch(leaves);
        }

        Observer = fromCopy && leaves is not null ? new CopiedLeaves(hashes, extents, leaves) : null;
    }

    /// <summary>What the copy tells the leaves it covers to; null when every leaf is read back.</summary>
    public CopiedLeaves? Observer { get; }

    /// <summary>Touched chunks of an incremental whose leaves the previous point's leaf file did not vouch for: each leaf the copy did not cover is read back.</summary>
    public int ChunksReadWhole { get; private set; }

    /// <summary>The chunks this point hashes again; the others keep the previous point's hash.</summary>
    public IReadOnlyList<int> Chunks { get; }

    /// <summary>The bytes the hashing expects to read back once the copy covered what it will, for the progress.</summary>
    public long PlannedBytes => _hashes.LeafSize == 0
        ? Chunks.Sum(i => _hashes.Extent(i).Length)
        : Chunks.Sum(i => ReadBack(i, leaf => Observer?.IsInside(leaf) == true).Sum(r => Bytes(r.First, r.Count)));

    /// <summary>Every chunk's hash of the new point, once the copy ended; the leaf file receives the digests of the chunks hashed.</summary>
    public async Task<IReadOnlyList<string>> ComputeAsync(Action<long> done, CancellationToken cancellationToken)
    {
        IReadOnlyDictionary<int, string> computed;
        if (_hashes.LeafSize == 0)
        {
            computed = await _hashes.ComputeAsync(Chunks, done, cancellationToken);
        }
        else
        {
            var result = new System.Collections.Concurrent.ConcurrentDictionary<int, string>();
            await ChunkHashes.ForEachAsync(Chunks, done, async (index, token) =>
            {
                var (digests, read) = await LeafDigestsAsync(index, token);
                result[index] = ChunkHashes.Combine(digests);
                return read;
            }, cancellationToken);
            computed = result;
        }

        return [.. Enumerable.Range(0, _hashes.Count).Select(i => computed.TryGetValue(i, out string? h) ? h : _last!.Chunks[i])];
    }

    public void Dispose() => Observer?.Dispose();

    /// <summary>Chunk <paramref name="index"/>'s leaf digests: from the file (the copy's, or vouched previous ones), the rest read back.</summary>
    private async ValueTask<(byte[] Digests, long Bytes)> LeafDigestsAsync(int index, CancellationToken cancellationToken)
    {
        var (first, count) = _hashes.Leaves(index);
        byte[] digests = new byte[count * ChunkHashes.DigestSize];
        if (_vouched.Contains(index) || Observer is not null)
        {
            _leaves!.Read(first, digests);
        }

        long bytes = 0;
        foreach (var (runFirst, runCount) in ReadBack(index, leaf => Observer?.IsCovered(leaf) == true))
        {
            await _hashes.HashLeavesAsync(runFirst, runCount, digests.AsMemory((int)(runFirst - first) * ChunkHashes.DigestSize), cancellationToken);
            bytes += Bytes(runFirst, runCount);
        }

        _leaves!.Write(first, digests);
        return (digests, bytes);
    }

    /// <summary>
    /// The runs of leaves of chunk <paramref name="index"/> to read back: those the extents reach in a
    /// vouched chunk, every leaf otherwise, less the leaves <paramref name="fromCopy"/> says the copy gave.
    /// </summary>
    private IEnumerable<(long First, int Count)> ReadBack(int index, Func<long, bool> fromCopy)
    {
        var candidates = _vouched.Contains(index) ? _dirty[index] : [_hashes.Leaves(index)];
        foreach (var (first, count) in candidates)
        {
            long start = -1;
            for (long leaf = first; leaf < first + count; leaf++)
            {
                if (fromCopy(leaf))
                {
                    if (start >= 0)
                    {
                        yield return (start, (int)(leaf - start));
                        start = -1;
                    }
                }
                else if (start < 0)
                {
                    start = leaf;
                }
            }

            if (start >= 0)
            {
                yield return (start, (int)(first + count - start));
            }
        }
    }

    /// <summary>Bytes of <paramref name="count"/> leaves from <paramref name="first"/> (the disk's last leaf may be short).</summary>
    private long Bytes(long first, int count) =>
        Math.Min(_hashes.DiskSize, (first + count) * _hashes.LeafSize) - (first * _hashes.LeafSize);

    /// <summary>Finds the touched chunks whose previous leaf digests combine into the previous manifest's hash.</summary>
    private void Vouch(LeafDigestFile leaves)
    {
        foreach (int index in Chunks)
        {
            if (leaves.Known)
            {
                var (first, count) = _hashes.Leaves(index);
                byte[] digests = new byte[count * ChunkHashes.DigestSize];
                leaves.Read(first, digests);
                if (ChunkHashes.Combine(digests) == _last!.Chunks[index])
                {
                    _vouched.Add(index);
                    continue;
                }
            }

            ChunksReadWhole++;
        }
    }

    private static Dictionary<int, List<(long First, int Count)>> DirtyLeaves(ChunkHashes hashes, IReadOnlyList<BackupExtent> extents)
    {
        var byChunk = new Dictionary<int, List<(long First, int Count)>>();
        long leavesPerChunk = hashes.ChunkSize / hashes.LeafSize;
        long next = -1; // the first leaf not yet taken: extents are in order, and two may share a leaf
        foreach (var extent in extents)
        {
            long first = Math.Max(next, extent.Offset / hashes.LeafSize);
            long end = (extent.Offset + extent.Length + hashes.LeafSize - 1) / hashes.LeafSize;
            while (first < end)
            {
                int chunk = (int)(first / leavesPerChunk);
                long stop = Math.Min(end, (chunk + 1) * leavesPerChunk);
                var runs = byChunk.TryGetValue(chunk, out var list) ? list : byChunk[chunk] = [];
                if (runs.Count > 0 && runs[^1].First + runs[^1].Count == first)
                {
                    runs[^1] = (runs[^1].First, runs[^1].Count + (int)(stop - first));
                }
                else
                {
                    runs.Add((first, (int)(stop - first)));
                }

                first = stop;
            }

            next = Math.Max(next, end);
        }

        return byChunk;
    }
}
