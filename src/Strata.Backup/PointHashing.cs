namespace Strata.Backup;

/// <summary>
/// The chunk hashes of a new point, read from its chain after the copy. A full point, or any point
/// without leaves (version 1), hashes every chunk it must: all of them for a full point, the touched
/// ones for an incremental. An incremental with leaves reads only the leaves its extents reach: the
/// other leaves of a touched chunk come from the previous point's leaf file, used for a chunk only
/// when they combine into the hash the previous manifest records (otherwise that chunk is read whole).
/// So its cost follows the dirty data, and verify never depends on the leaf file.
/// </summary>
internal sealed class PointHashing(ChunkHashes hashes, BackupManifest? last, IReadOnlyList<BackupExtent> extents, bool incremental)
{
    /// <summary>The leaves the extents reach, as runs of leaf numbers split at chunk boundaries, by chunk.</summary>
    private readonly Dictionary<int, List<(long First, int Count)>> _dirty = incremental && hashes.LeafSize > 0 ? DirtyLeaves(hashes, extents) : [];

    /// <summary>Touched chunks whose leaves the leaf file did not vouch for, read whole.</summary>
    public int ChunksReadWhole { get; private set; }

    /// <summary>The chunks this point hashes again; the others keep the previous point's hash.</summary>
    public IReadOnlyList<int> Chunks { get; } = incremental ? [.. hashes.Touched(extents)] : [.. Enumerable.Range(0, hashes.Count)];

    /// <summary>The bytes the hashing expects to read (whole leaves: the disk's last one may be shorter), for the progress.</summary>
    public long PlannedBytes => hashes.LeafSize > 0 && incremental
        ? _dirty.Values.Sum(runs => runs.Sum(r => (long)r.Count * hashes.LeafSize))
        : Chunks.Sum(i => hashes.Extent(i).Length);

    /// <summary>Every chunk's hash of the new point; <paramref name="leaves"/> (with leaves only) receives the digests of the chunks hashed.</summary>
    public async Task<IReadOnlyList<string>> ComputeAsync(LeafDigestFile? leaves, Action<long> done, CancellationToken cancellationToken)
    {
        IReadOnlyDictionary<int, string> computed;
        if (hashes.LeafSize == 0)
        {
            computed = await hashes.ComputeAsync(Chunks, done, cancellationToken);
        }
        else
        {
            ArgumentNullException.ThrowIfNull(leaves);
            var result = new System.Collections.Concurrent.ConcurrentDictionary<int, string>();
            await ChunkHashes.ForEachAsync(Chunks, done, async (index, token) =>
            {
                var (digests, read) = await LeafDigestsAsync(index, leaves, token);
                result[index] = ChunkHashes.Combine(digests);
                return read;
            }, cancellationToken);
            computed = result;
        }

        return [.. Enumerable.Range(0, hashes.Count).Select(i => computed.TryGetValue(i, out string? h) ? h : last!.Chunks[i])];
    }

    private async ValueTask<(byte[] Digests, long Bytes)> LeafDigestsAsync(int index, LeafDigestFile leaves, CancellationToken cancellationToken)
    {
        var (first, count) = hashes.Leaves(index);
        byte[] digests = new byte[count * ChunkHashes.DigestSize];
        if (incremental && leaves.Known)
        {
            leaves.Read(first, digests);
            if (ChunkHashes.Combine(digests) == last!.Chunks[index])
            {
                long bytes = 0;
                foreach (var run in _dirty[index])
                {
                    await hashes.HashLeavesAsync(run.First, run.Count, digests.AsMemory((int)(run.First - first) * ChunkHashes.DigestSize), cancellationToken);
                    bytes += (long)run.Count * hashes.LeafSize;
                }

                leaves.Write(first, digests);
                return (digests, bytes);
            }
        }

        if (incremental)
        {
            ChunksReadWhole++;
        }

        digests = await hashes.LeafDigestsAsync(index, cancellationToken);
        leaves.Write(first, digests);
        return (digests, hashes.Extent(index).Length);
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
