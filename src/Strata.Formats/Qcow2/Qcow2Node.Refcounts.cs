using System.Buffers.Binary;
using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>
/// Refcount table and blocks, the cluster allocator and refcount-table growth (qcow2.txt, "Host
/// cluster management").
/// </summary>
public sealed partial class Qcow2Node
{
    /// <summary>Bits 0-8 of a refcount table entry are reserved; the rest is the block's offset.</summary>
    private const ulong RefcountTableOffsetMask = ~0x1ffUL;

    private long RefcountsPerBlock => 1L << _refBlockBits;

    private long RefcountBlockOffset(long blockIndex)
    {
        long offset = (long)(_refcountTable[blockIndex] & RefcountTableOffsetMask);
        if (offset != 0 && ((offset & (_clusterSize - 1)) != 0 || offset < 0 || offset >= _file.Size))
        {
            throw BlockException.Corrupt($"qcow2: refcount table entry {blockIndex} points to an invalid refcount block offset 0x{offset:x}");
        }

        return offset;
    }

    private async ValueTask<byte[]> GetRefcountBlockLocked(long offset, CancellationToken cancellationToken)
    {
        if (_refcountCache.TryGet(offset, out var block))
        {
            return block;
        }

        await MakeRoomInRefcountCacheLocked(cancellationToken);
        block = new byte[_clusterSize];
        await _file.ReadAsync(offset, block, cancellationToken);
        _refcountCache.Add(offset, block, dirty: false);
        return block;
    }

    private async ValueTask MakeRoomInRefcountCacheLocked(CancellationToken cancellationToken)
    {
        // In-memory refcounts are never below the references on disk (decrements wait for the
        // metadata that dropped the reference to be durable), so dirty blocks may be written any time.
        while (_refcountCache.IsFull && !_refcountCache.TryEvictClean())
        {
            await WriteRefcountBlocksLocked(cancellationToken);
        }
    }

    private async ValueTask WriteRefcountBlocksLocked(CancellationToken cancellationToken)
    {
        foreach (var (offset, block) in _refcountCache.DirtyTables())
        {
            await WriteMetadataLocked(offset, block, Qcow2MetadataKind.RefcountBlock, cancellationToken);
            _refcountCache.MarkClean(offset);
        }
    }

    /// <summary>Writes dirty refcount blocks, then (after a flush, so new blocks are durable first) the refcount table.</summary>
    private async ValueTask WriteRefcountsLocked(CancellationToken cancellationToken)
    {
        await WriteRefcountBlocksLocked(cancellationToken);
        if (_refcountTableDirty)
        {
            await _file.FlushAsync(cancellationToken);
            await WriteMetadataLocked(_header.RefcountTableOffset, SerializeTable(_refcountTable, _refcountTable.Length * 8), Qcow2MetadataKind.RefcountTable, cancellationToken);
            _refcountTableDirty = false;
        }
    }

    /// <summary>The refcount of a host cluster (0 when no refcount block covers it).</summary>
    private async ValueTask<ulong> GetRefcountLocked(long cluster, CancellationToken cancellationToken)
    {
        long blockIndex = cluster >> _refBlockBits;
        if (blockIndex >= _refcountTable.Length)
        {
            return 0;
        }

        long offset = RefcountBlockOffset(blockIndex);
        if (offset == 0)
        {
            return 0;
        }

        var block = await GetRefcountBlockLocked(offset, cancellationToken);
        return Qcow2RefcountArray.Get(block, _refcountOrder, (int)(cluster & (RefcountsPerBlock - 1)));
    }

    /// <summary>Sets a refcount, creating the refcount block (and growing the table) when needed.</summary>
    private async ValueTask SetRefcountLocked(long cluster, ulong value, CancellationToken cancellationToken)
    {
        if (value > Qcow2RefcountArray.MaxValue(_refcountOrder))
        {
            throw BlockException.NotSupported($"qcow2: refcount {value} of cluster {cluster} exceeds the {_header.RefcountBits}-bit refcount width");
        }

        long offset = await RefcountBlockForLocked(cluster >> _refBlockBits, cancellationToken);
        var block = await GetRefcountBlockLocked(offset, cancellationToken);
        Qcow2RefcountArray.Set(block, _refcountOrder, (int)(cluster & (RefcountsPerBlock - 1)), value);
        _refcountCache.MarkDirty(offset);
        if (value == 0)
        {
            _freeCursor = Math.Min(_freeCursor, cluster);
        }
    }

    /// <summary>
    /// The offset of refcount block <paramref name="blockIndex"/>, growing the table and creating the
    /// block when needed. Straight-line: growth always makes room for the index, and a new block is
    /// never placed at offset 0 (the header), which would read back as "no block" and be created again
    /// forever; a block shared by two table entries is refused.
    /// </summary>
    private async ValueTask<long> RefcountBlockForLocked(long blockIndex, CancellationToken cancellationToken)
    {
        if (blockIndex >= _refcountTable.Length)
        {
            await GrowRefcountTableLocked(blockIndex, cancellationToken);
        }

        long offset = RefcountBlockOffset(blockIndex);
        if (offset == 0)
        {
            // A new block goes to the first free cluster of the range it covers (self-describing);
            // never to offset 0, which is the header's.
            await CreateRefcountBlockLocked(blockIndex, cancellationToken);
            offset = RefcountBlockOffset(blockIndex);
        }

        if (_metadata.IsSharedRefcountBlock(offset))
        {
            await MarkCorruptLockedAsync();
            throw BlockException.Corrupt($"qcow2 image '{FileName}': refcount table entry {blockIndex} names refcount block 0x{offset:x}, which another entry names too; image marked as corrupt");
        }

        return offset;
    }

    private async ValueTask DecrementRefcountsLocked(long offset, long length, CancellationToken cancellationToken)
    {
        long first = offset >> _clusterBits;
        long last = (offset + length - 1) >> _clusterBits;
        for (long c = first; c <= last; c++)
        {
            ulong refcount = await GetRefcountLocked(c, cancellationToken);
            if (refcount > 0)
            {
                await SetRefcountLocked(c, refcount - 1, cancellationToken);
            }
        }
    }

    /// <summary>Frees clusters once the metadata that dropped them is durable (at the next flush).</summary>
    private void FreeLater(long offset, long length) => _pendingFrees.Add((offset, length));

    private async ValueTask CreateRefcountBlockLocked(long blockIndex, CancellationToken cancellationToken)
    {
        long cluster = blockIndex << _refBlockBits;
        var references = _repairReferences;
        if (references is not null)
        {
            // During a repair, clusters in the range may be referenced without a refcount yet.
            long end = (blockIndex + 1) << _refBlockBits;
            while (cluster < end && cluster < references.LongLength && references[cluster] != 0)
            {
                cluster++;
            }

            if (cluster == end)
            {
                throw BlockException.Corrupt($"qcow2 image '{FileName}': every cluster that refcount block {blockIndex} would cover is in use, so it has no place; the refcount structure cannot be repaired here");
            }
        }

        long offset = cluster << _clusterBits;
        await CheckOverlapLocked(offset, _clusterSize, Qcow2MetadataKind.None, "allocation of a refcount block");
        if (references is not null && cluster < references.LongLength)
        {
            references[cluster]++;
        }

        var block = new byte[_clusterSize];
        Qcow2RefcountArray.Set(block, _refcountOrder, (int)(cluster & (RefcountsPerBlock - 1)), 1);
        await EnsureFileSizeLocked(offset + _clusterSize, cancellationToken);
        await MakeRoomInRefcountCacheLocked(cancellationToken);
        _refcountCache.Add(offset, block, dirty: true);
        _refcountTable[blockIndex] = (ulong)offset;
        _metadata.AddRefcountBlock(offset);
        _refcountTableDirty = true;
    }

    /// <summary>
    /// Allocates up to <paramref name="want"/> contiguous free clusters (at least one, within one
    /// refcount block) from the free cursor and sets their refcounts to 1. Returns the host offset and
    /// the count. Refuses, as corrupt, clusters that hold metadata: their refcount says free, so the
    /// refcounts are wrong.
    /// </summary>
    private async ValueTask<(long Host, int Count)> AllocateClustersLocked(int want, CancellationToken cancellationToken)
    {
        // Every pass returns or moves on to the next refcount block, and the table never has more than
        // MaxRefcountTableBytes / 8 entries (growing past that fails): the passes are bounded.
        long c = _freeCursor;
        for (long pass = 0; pass <= Qcow2Header.MaxRefcountTableBytes / 8; pass++)
        {
            long blockIndex = c >> _refBlockBits;
            long blockOffset = await RefcountBlockForLocked(blockIndex, cancellationToken);
            var block = await GetRefcountBlockLocked(blockOffset, cancellationToken);
            int index = (int)(c & (RefcountsPerBlock - 1));
            int end = (int)RefcountsPerBlock;
            while (index < end && Qcow2RefcountArray.Get(block, _refcountOrder, index) != 0)
            {
                index++;
            }

            if (index == end)
            {
                // No free cluster below the next block: later searches start there.
                c = (blockIndex + 1) << _refBlockBits;
                _freeCursor = c;
                continue;
            }

            int count = 1;
            while (count < want && index + count < end && Qcow2RefcountArray.Get(block, _refcountOrder, index + count) == 0)
            {
                count++;
            }

            long start = (blockIndex << _refBlockBits) + index;
            long host = start << _clusterBits;
            await CheckOverlapLocked(host, (long)count << _clusterBits, Qcow2MetadataKind.None, "allocation of host clusters");
            for (int i = 0; i < count; i++)
            {
                Qcow2RefcountArray.Set(block, _refcountOrder, index + i, 1);
            }

            _refcountCache.MarkDirty(blockOffset);
            _freeCursor = start + count;
            await EnsureFileSizeLocked(host + ((long)count << _clusterBits), cancellationToken);
            return (host, count);
        }

        throw BlockException.Corrupt($"qcow2 image '{FileName}': no free cluster in the whole refcount table; the refcounts are corrupt");
    }

    /// <summary>
    /// Allocates exactly <paramref name="count"/> contiguous clusters (for tables), across refcount
    /// blocks. A block created for a range the run covers cannot sit at the start of that range (it
    /// would split the run), so the missing blocks go right after the run, in clusters reserved with
    /// it, and their own refcounts go to whichever block covers them (qcow2.txt allows a refcount
    /// block anywhere).
    /// </summary>
    private async ValueTask<long> AllocateContiguousLocked(int count, CancellationToken cancellationToken)
    {
        // Room for a block for every range the run and the room itself may touch.
        long extra = 0;
        for (long need = 2; need > extra;)
        {
            extra = need;
            need = ((count + extra + RefcountsPerBlock - 1) / RefcountsPerBlock) + 1;
        }

        // A new search is needed only after the refcount table grew into the run found; the table
        // doubles each time, up to its maximum, so a few dozen searches at most.
        for (int attempt = 0; attempt < 64; attempt++)
        {
            long start = await FindFreeRunLocked(count + extra, cancellationToken);
            long firstBlock = start >> _refBlockBits;
            long lastBlock = (start + count + extra - 1) >> _refBlockBits;
            if (lastBlock >= _refcountTable.Length)
            {
                await GrowRefcountTableLocked(lastBlock, cancellationToken);
                continue;
            }

            var missing = new List<long>();
            for (long blockIndex = firstBlock; blockIndex <= lastBlock; blockIndex++)
            {
                if (RefcountBlockOffset(blockIndex) == 0)
                {
                    missing.Add(blockIndex);
                }
            }

            long host = start << _clusterBits;
            long used = count + missing.Count;
            await CheckOverlapLocked(host, used << _clusterBits, Qcow2MetadataKind.None, "allocation of host clusters");
            await EnsureFileSizeLocked(host + (used << _clusterBits), cancellationToken);
            for (int j = 0; j < missing.Count; j++)
            {
                long blockOffset = (start + count + j) << _clusterBits;
                await MakeRoomInRefcountCacheLocked(cancellationToken);
                _refcountCache.Add(blockOffset, new byte[_clusterSize], dirty: true);
                _refcountTable[missing[j]] = (ulong)blockOffset;
                _metadata.AddRefcountBlock(blockOffset);
                _refcountTableDirty = true;
            }

            for (long c = start; c < start + used; c++)
            {
                await SetRefcountLocked(c, 1, cancellationToken);
            }

            return host;
        }

        throw BlockException.Corrupt($"qcow2 image '{FileName}': found no run of {count} free clusters that stays free; the refcounts are corrupt");
    }

    /// <summary>The first cluster, from the free cursor, of <paramref name="count"/> consecutive clusters whose refcount is 0.</summary>
    private async ValueTask<long> FindFreeRunLocked(long count, CancellationToken cancellationToken)
    {
        // Past the clusters the refcount table covers every refcount is 0, so the search ends there at
        // the latest.
        long covered = (long)_refcountTable.Length << _refBlockBits;
        long start = _freeCursor;
        long run = 0;
        for (long c = _freeCursor; c <= Math.Max(covered, _freeCursor) + count; c++)
        {
            if (await GetRefcountLocked(c, cancellationToken) != 0)
            {
                run = 0;
                start = c + 1;
                continue;
            }

            if (++run == count)
            {
                return start;
            }
        }

        throw BlockException.Corrupt($"qcow2 image '{FileName}': found no run of {count} free clusters; the refcounts are corrupt");
    }

    private async ValueTask EnsureFileSizeLocked(long end, CancellationToken cancellationToken)
    {
        if (_file.Size < end)
        {
            await _file.ResizeAsync(end, cancellationToken);
        }
    }

    /// <summary>
    /// Grows the refcount table so it has an entry for <paramref name="neededIndex"/> (qcow2.txt,
    /// "refcount_table_offset"): new refcount blocks and the new table go to fresh clusters past the
    /// range the old table covers, are written and flushed; then the header points to them in one
    /// write, flushed; then the old table is freed.
    /// </summary>
    private async ValueTask GrowRefcountTableLocked(long neededIndex, CancellationToken cancellationToken)
    {
        await WriteRefcountsLocked(cancellationToken);
        long oldEntries = _refcountTable.Length;
        long perBlock = RefcountsPerBlock;
        long entriesPerCluster = _clusterSize / 8;
        long area = oldEntries * perBlock;
        long newEntries = Math.Max(oldEntries * 2, neededIndex + 1);
        long tableClusters = 0;
        long blocks = 1;

        // The new blocks must count themselves and the new table, and the table must have an entry for
        // each new block. Both only grow and a block covers at least 64 clusters, so this settles in a
        // few rounds; the bound is a guard.
        bool settled = false;
        for (int round = 0; round < 64 && !settled; round++)
        {
            tableClusters = (newEntries + entriesPerCluster - 1) / entriesPerCluster;
            long needBlocks = (blocks + tableClusters + perBlock - 1) / perBlock;
            if (needBlocks > blocks)
            {
                blocks = needBlocks;
            }
            else if (newEntries < oldEntries + blocks)
            {
                newEntries = oldEntries + blocks;
            }
            else
            {
                settled = true;
            }
        }

        if (!settled)
        {
            throw BlockException.Corrupt($"qcow2 image '{FileName}': no refcount table layout found for {newEntries} entries");
        }

        newEntries = tableClusters * entriesPerCluster;
        if (tableClusters * _clusterSize > Qcow2Header.MaxRefcountTableBytes)
        {
            throw new BlockException(BlockError.NoSpace, "qcow2: the refcount table cannot grow further (image too large)");
        }

        long blocksOffset = area << _clusterBits;
        long tableOffset = (area + blocks) << _clusterBits;

        // Nothing past the covered range can hold metadata (it would have no refcount).
        await CheckOverlapLocked(blocksOffset, (blocks + tableClusters) << _clusterBits, Qcow2MetadataKind.None, "refcount table growth");
        await EnsureFileSizeLocked(tableOffset + (tableClusters * _clusterSize), cancellationToken);
        var newBlocks = new byte[blocks][];
        for (long j = 0; j < blocks; j++)
        {
            newBlocks[j] = new byte[_clusterSize];
        }

        for (long x = area; x < area + blocks + tableClusters; x++)
        {
            long j = (x - area) / perBlock;
            Qcow2RefcountArray.Set(newBlocks[j], _refcountOrder, (int)((x - area) % perBlock), 1);
        }

        var table = new ulong[newEntries];
        _refcountTable.CopyTo(table, 0);
        for (long j = 0; j < blocks; j++)
        {
            table[oldEntries + j] = (ulong)(blocksOffset + (j << _clusterBits));
            await WriteMetadataLocked(blocksOffset + (j << _clusterBits), newBlocks[j], Qcow2MetadataKind.None, cancellationToken);
        }

        await WriteMetadataLocked(tableOffset, SerializeTable(table, (int)(tableClusters * _clusterSize)), Qcow2MetadataKind.None, cancellationToken);
        await _file.FlushAsync(cancellationToken);

        var fields = new byte[12];
        BinaryPrimitives.WriteInt64BigEndian(fields, tableOffset);
        BinaryPrimitives.WriteInt32BigEndian(fields.AsSpan(8), (int)tableClusters);
        await WriteMetadataLocked(Qcow2Header.OffsetRefcountTable, fields, Qcow2MetadataKind.Header, cancellationToken);
        await _file.FlushAsync(cancellationToken);

        long oldOffset = _header.RefcountTableOffset;
        long oldClusters = _header.RefcountTableClusters;
        _refcountTable = table;
        _header.RefcountTableOffset = tableOffset;
        _header.RefcountTableClusters = (int)tableClusters;
        _metadata.SetRefcountTable(tableOffset, tableClusters << _clusterBits);
        for (long j = 0; j < blocks; j++)
        {
            _metadata.AddRefcountBlock(blocksOffset + (j << _clusterBits));
            await MakeRoomInRefcountCacheLocked(cancellationToken);
            _refcountCache.Add(blocksOffset + (j << _clusterBits), newBlocks[j], dirty: false);
        }

        await DecrementRefcountsLocked(oldOffset, oldClusters << _clusterBits, cancellationToken);
    }
}
