using System.Buffers.Binary;
using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>L1/L2 tables, the L2 cache and the ordered write-back of metadata (qcow2.txt, "Cluster mapping").</summary>
public sealed partial class Qcow2Node
{
    private long L2Entries => 1L << _l2Bits;

    /// <summary>The L2 entry of a guest cluster (0 when its L2 table is absent).</summary>
    private async ValueTask<ulong> GetL2EntryLocked(long guestCluster, CancellationToken cancellationToken)
    {
        var table = await GetL2TableForLocked(guestCluster, allocate: false, cancellationToken);
        return table is null ? 0 : table[guestCluster & (L2Entries - 1)];
    }

    /// <summary>The L2 table covering a guest cluster; allocates it when asked and absent.</summary>
    private async ValueTask<ulong[]?> GetL2TableForLocked(long guestCluster, bool allocate, CancellationToken cancellationToken)
    {
        long l1Index = guestCluster >> _l2Bits;
        if (l1Index >= _l1.Length)
        {
            if (allocate)
            {
                throw BlockException.Invalid($"qcow2: guest cluster {guestCluster} is beyond the L1 table");
            }

            return null;
        }

        long l2Offset = L2OffsetOf(l1Index);
        if (l2Offset == 0)
        {
            if (!allocate)
            {
                return null;
            }

            var (host, _) = await AllocateClustersLocked(1, cancellationToken);
            var fresh = new ulong[L2Entries];
            await MakeRoomInL2CacheLocked(cancellationToken);
            _l2Cache.Add(host, fresh, dirty: true);
            SetL1Entry((int)l1Index, (ulong)host | Qcow2L2Entry.Copied);
            return fresh;
        }

        return await GetL2TableLocked(l2Offset, cancellationToken);
    }

    private long L2OffsetOf(long l1Index)
    {
        ulong entry = _l1[l1Index];
        long offset = Qcow2L2Entry.HostOffset(entry);
        if (offset != 0 && ((offset & (_clusterSize - 1)) != 0 || offset >= _file.Size))
        {
            throw BlockException.Corrupt($"qcow2: L1 entry {l1Index} points to an invalid L2 table offset 0x{offset:x}");
        }

        return offset;
    }

    private void SetL1Entry(int index, ulong value)
    {
        _metadata.RemoveL2Table(Qcow2L2Entry.HostOffset(_l1[index]));
        _metadata.AddL2Table(Qcow2L2Entry.HostOffset(value));
        _l1[index] = value;
        _l1DirtyFirst = Math.Min(_l1DirtyFirst, index);
        _l1DirtyLast = Math.Max(_l1DirtyLast, index);
    }

    private async ValueTask<ulong[]> GetL2TableLocked(long l2Offset, CancellationToken cancellationToken)
    {
        if (_l2Cache.TryGet(l2Offset, out var table))
        {
            return table;
        }

        await MakeRoomInL2CacheLocked(cancellationToken);
        table = await ReadTableAsync(_file, l2Offset, (int)L2Entries, cancellationToken);
        _l2Cache.Add(l2Offset, table, dirty: false);
        return table;
    }

    private void MarkL2Dirty(long guestCluster) => _l2Cache.MarkDirty(L2OffsetOf(guestCluster >> _l2Bits));

    private async ValueTask MakeRoomInL2CacheLocked(CancellationToken cancellationToken)
    {
        while (_l2Cache.IsFull && !_l2Cache.TryEvictClean())
        {
            // Every cached table is dirty: write them back in order (refcounts first), then evict.
            await WriteRefcountsLocked(cancellationToken);
            await _file.FlushAsync(cancellationToken);
            await WriteL2TablesLocked(cancellationToken);
        }
    }

    private async ValueTask WriteL2TablesLocked(CancellationToken cancellationToken)
    {
        foreach (var (offset, table) in _l2Cache.DirtyTables())
        {
            await WriteMetadataLocked(offset, SerializeTable(table, _clusterSize), Qcow2MetadataKind.L2Table, cancellationToken);
            _l2Cache.MarkClean(offset);
        }
    }

    /// <summary>
    /// Makes all metadata durable in dependency order: refcount blocks (and the refcount table) → flush
    /// → L2 tables → flush → L1 table → flush. Then frees the clusters that the written metadata no
    /// longer references (their refcount blocks are written by the next flush).
    /// </summary>
    private async ValueTask FlushMetadataLocked(CancellationToken cancellationToken)
    {
        await WriteRefcountsLocked(cancellationToken);
        await _file.FlushAsync(cancellationToken);
        bool wrote = false;
        if (_l2Cache.DirtyCount > 0)
        {
            await WriteL2TablesLocked(cancellationToken);
            wrote = true;
        }

        if (_l1DirtyLast >= 0)
        {
            if (wrote)
            {
                await _file.FlushAsync(cancellationToken);
            }

            int first = _l1DirtyFirst;
            int count = _l1DirtyLast - first + 1;
            await WriteMetadataLocked(_header.L1TableOffset + (first * 8L), SerializeTable(_l1.AsSpan(first, count), count * 8), Qcow2MetadataKind.L1Table, cancellationToken);
            _l1DirtyFirst = int.MaxValue;
            _l1DirtyLast = -1;
            wrote = true;
        }

        if (wrote)
        {
            await _file.FlushAsync(cancellationToken);
        }

        if (_pendingFrees.Count > 0 && Volatile.Read(ref _dataIoInFlight) == 0)
        {
            var frees = _pendingFrees.ToArray();
            _pendingFrees.Clear();
            foreach (var (offset, length) in frees)
            {
                // Checked when the entry was replaced; checked again, as no free may touch metadata.
                await CheckOverlapLocked(offset, length, Qcow2MetadataKind.None, "free of a guest cluster's host clusters");
                await DecrementRefcountsLocked(offset, length, cancellationToken);
            }
        }
    }

    /// <summary>Flushes until nothing is dirty or pending (frees dirty refcount blocks once more).</summary>
    private async ValueTask FlushAllLockedAsync(CancellationToken cancellationToken)
    {
        await FlushMetadataLocked(cancellationToken);
        if (_refcountCache.DirtyCount > 0 || _refcountTableDirty)
        {
            await WriteRefcountsLocked(cancellationToken);
            await _file.FlushAsync(cancellationToken);
        }
    }

    /// <summary>Writes the header's size field (bytes 24-31).</summary>
    private async ValueTask WriteSizeLocked(long size, CancellationToken cancellationToken)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(bytes, size);
        await WriteMetadataLocked(Qcow2Header.OffsetSize, bytes, Qcow2MetadataKind.Header, cancellationToken);
        await _file.FlushAsync(cancellationToken);
        _header.Size = size;
        Volatile.Write(ref _size, size);
    }

    /// <summary>
    /// Grows the L1 table (qcow2.txt, "l1_size"): the new table goes to fresh clusters, is written and
    /// flushed, then the header's l1_size and l1_table_offset change in one write; the old table is freed.
    /// </summary>
    private async ValueTask GrowL1Locked(int newEntries, CancellationToken cancellationToken)
    {
        if ((long)newEntries * 8 > Qcow2Header.MaxL1Bytes)
        {
            throw BlockException.NotSupported($"qcow2: the L1 table would need {newEntries} entries (at most {Qcow2Header.MaxL1Bytes / 8})");
        }

        await FlushMetadataLocked(cancellationToken);
        int clusters = (int)(((newEntries * 8L) + _clusterSize - 1) >> _clusterBits);
        long host = await AllocateContiguousLocked(clusters, cancellationToken);
        await WriteRefcountsLocked(cancellationToken);
        await _file.FlushAsync(cancellationToken);

        var l1 = new ulong[newEntries];
        _l1.CopyTo(l1, 0);
        await WriteMetadataLocked(host, SerializeTable(l1, clusters * _clusterSize), Qcow2MetadataKind.None, cancellationToken);
        await _file.FlushAsync(cancellationToken);

        var fields = new byte[12];
        BinaryPrimitives.WriteInt32BigEndian(fields, newEntries);
        BinaryPrimitives.WriteInt64BigEndian(fields.AsSpan(4), host);
        await WriteMetadataLocked(Qcow2Header.OffsetL1Size, fields, Qcow2MetadataKind.Header, cancellationToken);
        await _file.FlushAsync(cancellationToken);

        long oldOffset = _header.L1TableOffset;
        long oldBytes = _l1.Length * 8L;
        _l1 = l1;
        _header.L1Size = newEntries;
        _header.L1TableOffset = host;
        _metadata.SetL1Table(host, newEntries * 8L);
        if (oldBytes > 0)
        {
            await DecrementRefcountsLocked(oldOffset, oldBytes, cancellationToken);
        }
    }
}
