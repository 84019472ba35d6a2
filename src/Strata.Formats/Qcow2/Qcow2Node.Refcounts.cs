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
            await _file.WriteAsync(offset, block, WriteFlags.None, cancellationToken);
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
            await _file.WriteAsync(_header.RefcountTableOffset, SerializeTable(_refcountTable, _refcountTable.Length * 8), WriteFlags.None, cancellationToken);
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

        while (true)
        {
            long blockIndex = cluster >> _refBlockBits;
            if (blockIndex >= _refcountTable.Length)
            {
                await GrowRefcountTableLocked(blockIndex, cancellationToken);
                continue;
            }

            long offset = RefcountBlockOffset(blockIndex);
            if (offset == 0)
            {
                // A new block goes to the first free cluster of the range it covers (self-describing).
                await CreateRefcountBlockLocked(blockIndex, cancellationToken);
                continue;
            }

            var block = await GetRefcountBlockLocked(offset, cancellationToken);
            Qcow2RefcountArray.Set(block, _refcountOrder, (int)(cluster & (RefcountsPerBlock - 1)), value);
            _refcountCache.MarkDirty(offset);
            if (value == 0)
            {
                _freeCursor = Math.Min(_freeCursor, cluster);
            }

            return;
        }
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
        if (_repairReferences is { } references)
        {
            // During a repair, clusters in the range may be referenced without a refcount yet.
            long end = (blockIndex + 1) << _refBlockBits;
            while (cluster < end - 1 && cluster < references.LongLength && references[cluster] != 0)
            {
                cluster++;
            }

            if (cluster < references.LongLength)
            {
                references[cluster]++;
            }
        }

        var block = new byte[_clusterSize];
        Qcow2RefcountArray.Set(block, _refcountOrder, (int)(cluster & (RefcountsPerBlock - 1)), 1);
        long offset = cluster << _clusterBits;
        await EnsureFileSizeLocked(offset + _clusterSize, cancellationToken);
        await MakeRoomInRefcountCacheLocked(cancellationToken);
        _refcountCache.Add(offset, block, dirty: true);
        _refcountTable[blockIndex] = (ulong)offset;
        _refcountTableDirty = true;
    }

    /// <summary>
    /// Allocates up to <paramref name="want"/> contiguous free clusters (at least one) from the free
    /// cursor and sets their refcounts to 1. Returns the host offset and the count.
    /// </summary>
    private async ValueTask<(long Host, int Count)> AllocateClustersLocked(int want, CancellationToken cancellationToken)
    {
        long c = _freeCursor;
        while (true)
        {
            long blockIndex = c >> _refBlockBits;
            if (blockIndex >= _refcountTable.Length)
            {
                await GrowRefcountTableLocked(blockIndex, cancellationToken);
                continue;
            }

            long blockOffset = RefcountBlockOffset(blockIndex);
            if (blockOffset == 0)
            {
                // Only ever reached at the first cluster of the range: every earlier cluster is used.
                await CreateRefcountBlockLocked(blockIndex, cancellationToken);
                continue;
            }

            var block = await GetRefcountBlockLocked(blockOffset, cancellationToken);
            int index = (int)(c & (RefcountsPerBlock - 1));
            int end = (int)RefcountsPerBlock;
            while (index < end && Qcow2RefcountArray.Get(block, _refcountOrder, index) != 0)
            {
                index++;
            }

            if (index == end)
            {
                c = (blockIndex + 1) << _refBlockBits;
                continue;
            }

            int count = 1;
            while (count < want && index + count < end && Qcow2RefcountArray.Get(block, _refcountOrder, index + count) == 0)
            {
                count++;
            }

            for (int i = 0; i < count; i++)
            {
                Qcow2RefcountArray.Set(block, _refcountOrder, index + i, 1);
            }

            _refcountCache.MarkDirty(blockOffset);
            long start = (blockIndex << _refBlockBits) + index;
            _freeCursor = start + count;
            long host = start << _clusterBits;
            await EnsureFileSizeLocked(host + ((long)count << _clusterBits), cancellationToken);
            return (host, count);
        }
    }

    /// <summary>Allocates exactly <paramref name="count"/> contiguous clusters (for tables).</summary>
    private async ValueTask<long> AllocateContiguousLocked(int count, CancellationToken cancellationToken)
    {
        var partial = new List<(long Host, int Count)>();
        try
        {
            while (true)
            {
                var (host, got) = await AllocateClustersLocked(count, cancellationToken);
                if (got == count)
                {
                    return host;
                }

                // Too short a hole: keep it reserved while searching further, give it back afterwards.
                partial.Add((host, got));
            }
        }
        finally
        {
            foreach (var (host, got) in partial)
            {
                for (int i = 0; i < got; i++)
                {
                    await SetRefcountLocked((host >> _clusterBits) + i, 0, cancellationToken);
                }
            }
        }
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
        long tableClusters;
        long blocks = 1;
        while (true)
        {
            tableClusters = (newEntries + entriesPerCluster - 1) / entriesPerCluster;
            long needBlocks = (blocks + tableClusters + perBlock - 1) / perBlock;
            if (needBlocks > blocks)
            {
                blocks = needBlocks;
                continue;
            }

            if (newEntries < oldEntries + blocks)
            {
                newEntries = oldEntries + blocks;
                continue;
            }

            break;
        }

        newEntries = tableClusters * entriesPerCluster;
        if (tableClusters * _clusterSize > Qcow2Header.MaxRefcountTableBytes)
        {
            throw new BlockException(BlockError.NoSpace, "qcow2: the refcount table cannot grow further (image too large)");
        }

        long blocksOffset = area << _clusterBits;
        long tableOffset = (area + blocks) << _clusterBits;
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
            await _file.WriteAsync(blocksOffset + (j << _clusterBits), newBlocks[j], WriteFlags.None, cancellationToken);
        }

        await _file.WriteAsync(tableOffset, SerializeTable(table, (int)(tableClusters * _clusterSize)), WriteFlags.None, cancellationToken);
        await _file.FlushAsync(cancellationToken);

        var fields = new byte[12];
        BinaryPrimitives.WriteInt64BigEndian(fields, tableOffset);
        BinaryPrimitives.WriteInt32BigEndian(fields.AsSpan(8), (int)tableClusters);
        await _file.WriteAsync(Qcow2Header.OffsetRefcountTable, fields, WriteFlags.None, cancellationToken);
        await _file.FlushAsync(cancellationToken);

        long oldOffset = _header.RefcountTableOffset;
        long oldClusters = _header.RefcountTableClusters;
        _refcountTable = table;
        _header.RefcountTableOffset = tableOffset;
        _header.RefcountTableClusters = (int)tableClusters;
        for (long j = 0; j < blocks; j++)
        {
            await MakeRoomInRefcountCacheLocked(cancellationToken);
            _refcountCache.Add(blocksOffset + (j << _clusterBits), newBlocks[j], dirty: false);
        }

        await DecrementRefcountsLocked(oldOffset, oldClusters << _clusterBits, cancellationToken);
    }
}
