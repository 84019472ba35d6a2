using System.Buffers;
using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>Guest I/O: reads, writes with allocation and copy-on-write, zeroing, discard, flush, block status.</summary>
public sealed partial class Qcow2Node
{
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (buffer.Length > 0)
        {
            Qcow2MappedRun run;
            await _metadataLock.WaitAsync(cancellationToken);
            try
            {
                run = await MapRunLocked(offset, buffer.Length, cancellationToken);
                Interlocked.Increment(ref _dataIoInFlight);
            }
            finally
            {
                _metadataLock.Release();
            }

            int n = (int)run.Length;
            var part = buffer[..n];
            try
            {
                await ReadRunAsync(offset, part, run, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _dataIoInFlight);
            }

            offset += n;
            buffer = buffer[n..];
        }
    }

    /// <summary>Reads one mapped run: from its host clusters, as zeroes, from the backing node, or decompressed.</summary>
    private async ValueTask ReadRunAsync(long offset, Memory<byte> part, Qcow2MappedRun run, CancellationToken cancellationToken)
    {
        int n = part.Length;
        switch (run.Kind)
        {
            case Qcow2ClusterKind.Normal:
                await _file.ReadAsync(run.Host, part, cancellationToken);
                break;
            case Qcow2ClusterKind.Zero:
                part.Span.Clear();
                break;
            case Qcow2ClusterKind.Unallocated:
                await BackingReader.ReadAsync(Backing, offset, part, cancellationToken);
                break;
            default:
                var cluster = ArrayPool<byte>.Shared.Rent(_clusterSize);
                try
                {
                    await ReadCompressedAsync(offset >> _clusterBits, run.Entry, cluster.AsMemory(0, _clusterSize), cancellationToken);
                    cluster.AsSpan((int)(offset & (_clusterSize - 1)), n).CopyTo(part.Span);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(cluster);
                }

                break;
        }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        try
        {
            await TrackWriteAsync(offset, data.Length, cancellationToken);
            while (data.Length > 0)
            {
                int n = await WriteRunAsync(offset, data, cancellationToken);
                offset += n;
                data = data[n..];
            }

            if ((flags & WriteFlags.Fua) != 0)
            {
                await FlushAsync(cancellationToken);
            }
        }
        catch (BlockException e) when (e.Error == BlockError.Corrupt)
        {
            await MarkCorruptAsync();
            throw;
        }
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        try
        {
            await TrackWriteAsync(offset, length, cancellationToken);
            long end = offset + length;
            long alignedStart = Math.Min(end, (offset + _clusterSize - 1) & ~(long)(_clusterSize - 1));
            long alignedEnd = Math.Max(alignedStart, end & ~(long)(_clusterSize - 1));
            if (offset < alignedStart)
            {
                await ZeroBytesAsync(offset, alignedStart - offset, flags, cancellationToken);
            }

            if (alignedStart < alignedEnd)
            {
                if (IsV3 || Backing is null)
                {
                    await UpdateClustersAsync(alignedStart >> _clusterBits, (alignedEnd - alignedStart) >> _clusterBits,
                        IsV3 ? Qcow2ClusterUpdate.Zero : Qcow2ClusterUpdate.Deallocate, cancellationToken);
                }
                else
                {
                    // Version 2 has no zero flag, and deallocating would show the backing file.
                    if ((flags & ZeroFlags.NoFallback) != 0)
                    {
                        throw BlockException.NotSupported("qcow2: fast zeroing needs a version 3 image (or no backing file)");
                    }

                    await ZeroBytesAsync(alignedStart, alignedEnd - alignedStart, ZeroFlags.None, cancellationToken);
                }
            }

            if (alignedEnd < end)
            {
                await ZeroBytesAsync(alignedEnd, end - alignedEnd, flags, cancellationToken);
            }

            if ((flags & ZeroFlags.Fua) != 0)
            {
                await FlushAsync(cancellationToken);
            }
        }
        catch (BlockException e) when (e.Error == BlockError.Corrupt)
        {
            await MarkCorruptAsync();
            throw;
        }
    }

    public async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        try
        {
            await TrackWriteAsync(offset, length, cancellationToken);

            // Only whole clusters can be discarded; the partial head and tail keep their data (discard is a hint).
            long first = (offset + _clusterSize - 1) >> _clusterBits;
            long end = (offset + length) >> _clusterBits;
            if (end > first && (IsV3 || Backing is null))
            {
                await UpdateClustersAsync(first, end - first, Qcow2ClusterUpdate.Discard, cancellationToken);
            }
        }
        catch (BlockException e) when (e.Error == BlockError.Corrupt)
        {
            await MarkCorruptAsync();
            throw;
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_readOnly)
        {
            return;
        }

        bool clean;
        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            // An image marked corrupt keeps its cached metadata to itself: nothing more of it is
            // written, only the data already written is made durable.
            clean = _markedCorrupt || (_l2Cache.DirtyCount == 0 && _refcountCache.DirtyCount == 0 && !_refcountTableDirty
                && _l1DirtyLast < 0 && _pendingFrees.Count == 0);
            if (!clean)
            {
                await FlushMetadataLocked(cancellationToken);
            }
        }
        finally
        {
            _metadataLock.Release();
        }

        if (clean)
        {
            // Nothing to order: metadata written earlier (evictions included) and every completed data
            // write become durable with one file flush, which need not block other requests.
            await _file.FlushAsync(cancellationToken);
        }
    }

    public async ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Qcow2MappedRun run;
        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            run = await MapRunLocked(offset, length, cancellationToken);
        }
        finally
        {
            _metadataLock.Release();
        }

        var state = run.Kind switch
        {
            Qcow2ClusterKind.Normal => BlockState.Allocated | BlockState.Data,
            Qcow2ClusterKind.Zero => BlockState.Allocated | BlockState.Zero,
            Qcow2ClusterKind.Compressed => BlockState.Allocated | BlockState.Data | BlockState.Compressed,
            _ => BlockState.Unallocated,
        };
        return new BlockExtent(offset, run.Length, state, run.Kind == Qcow2ClusterKind.Normal ? run.Host : -1);
    }

    /// <summary>
    /// Writes the part of <paramref name="data"/> that falls into one run: in place when the clusters
    /// are allocated; else into newly allocated contiguous clusters, with the partial head and tail
    /// clusters completed from their old content (backing, zeroes or compressed data) so the data goes
    /// to the file in one write, before the L2 entries change. Returns the bytes written (0: retry).
    /// </summary>
    private async ValueTask<int> WriteRunAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        long first = offset >> _clusterBits;
        long lastCluster = (offset + data.Length - 1) >> _clusterBits;
        Task? wait = null;
        long normalHost = -1;
        int normalLength = 0;
        long host = 0;
        int count = 0;
        ulong[]? oldEntries = null;
        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            var run = await MapRunLocked(offset, data.Length, cancellationToken);
            if (run.Kind == Qcow2ClusterKind.Normal)
            {
                // In place: a guest cluster mapped onto metadata is never written.
                await CheckOverlapLocked(run.Host, run.Length, Qcow2MetadataKind.None, "write on metadata");
                normalHost = run.Host;
                normalLength = (int)run.Length;
                Interlocked.Increment(ref _dataIoInFlight);
            }
            else if (_inflight.ContainsKey(first))
            {
                wait = AllocationEndLocked(first);
            }
            else
            {
                int limit = (int)Math.Min(lastCluster - first + 1, Math.Max(1, NodeLimits.DefaultMaxTransfer >> _clusterBits));
                var entries = ArrayPool<ulong>.Shared.Rent(limit);
                try
                {
                    entries[0] = run.Entry;
                    int found = 1;
                    for (; found < limit; found++)
                    {
                        long c = first + found;
                        ulong entry = await GetL2EntryLocked(c, cancellationToken);
                        if (_inflight.ContainsKey(c) || Classify(entry, c) == Qcow2ClusterKind.Normal)
                        {
                            break;
                        }

                        entries[found] = entry;
                    }

                    // The entries replaced will be freed: what they own must not be metadata.
                    for (int i = 0; i < found; i++)
                    {
                        await CheckOwnedRangeLocked(entries[i]);
                    }

                    (host, count) = await AllocateClustersLocked(found, cancellationToken);
                }
                catch
                {
                    ArrayPool<ulong>.Shared.Return(entries);
                    throw;
                }

                oldEntries = entries;
                for (int i = 0; i < count; i++)
                {
                    _inflight[first + i] = null;
                }
            }
        }
        finally
        {
            _metadataLock.Release();
        }

        if (wait is not null)
        {
            await wait;
            return 0;
        }

        if (normalHost >= 0)
        {
            try
            {
                await _file.WriteAsync(normalHost, data[..normalLength], WriteFlags.None, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _dataIoInFlight);
            }

            return normalLength;
        }

        // Past the two returns above, this write allocated: the entries it replaces were kept.
        var replaced = oldEntries!;
        long runStart = first << _clusterBits;
        long runEnd = (first + count) << _clusterBits;
        int written = (int)(Math.Min(offset + data.Length, runEnd) - offset);
        bool dataWritten = false;
        try
        {
            if (offset == runStart && offset + written == runEnd)
            {
                await _file.WriteAsync(host, data[..written], WriteFlags.None, cancellationToken);
            }
            else
            {
                int total = count << _clusterBits;
                var buffer = ArrayPool<byte>.Shared.Rent(total);
                try
                {
                    var run = buffer.AsMemory(0, total);
                    bool head = offset > runStart;
                    if (head)
                    {
                        await ReadClusterContentAsync(first, replaced[0], run[.._clusterSize], cancellationToken);
                    }

                    if (offset + written < runEnd && (count > 1 || !head))
                    {
                        await ReadClusterContentAsync(first + count - 1, replaced[count - 1], run[((count - 1) << _clusterBits)..], cancellationToken);
                    }

                    data.Span[..written].CopyTo(run.Span[(int)(offset - runStart)..]);
                    await _file.WriteAsync(host, run, WriteFlags.None, cancellationToken);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }

            dataWritten = true;
        }
        finally
        {
            await _metadataLock.WaitAsync(CancellationToken.None);
            try
            {
                if (dataWritten)
                {
                    await LinkClustersLocked(first, host, count, CancellationToken.None);
                }
                else
                {
                    for (int i = 0; i < count; i++)
                    {
                        await SetRefcountLocked((host >> _clusterBits) + i, 0, CancellationToken.None);
                    }
                }
            }
            finally
            {
                for (int i = 0; i < count; i++)
                {
                    if (_inflight.Remove(first + i, out var waiters))
                    {
                        waiters?.SetResult();
                    }
                }

                _metadataLock.Release();
                ArrayPool<ulong>.Shared.Return(replaced);
            }
        }

        return written;
    }

    /// <summary>
    /// A task that completes when the allocating write in progress on <paramref name="cluster"/>
    /// ends. The caller holds the metadata lock and found the cluster in <see cref="_inflight"/>; the
    /// signal is made only now, so a write nobody waits for allocates none.
    /// </summary>
    private Task AllocationEndLocked(long cluster) =>
        (_inflight[cluster] ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>Points the L2 entries of freshly written clusters at them and frees what the old entries owned.</summary>
    private async ValueTask LinkClustersLocked(long first, long host, int count, CancellationToken cancellationToken)
    {
        for (int i = 0; i < count; i++)
        {
            long c = first + i;
            var table = (await GetL2TableForLocked(c, allocate: true, cancellationToken))!;
            long index = c & (L2Entries - 1);
            ulong old = table[index];
            table[index] = (ulong)(host + ((long)i << _clusterBits)) | Qcow2L2Entry.Copied;
            MarkL2Dirty(c);
            var (freeOffset, freeLength) = OwnedHostRange(old);
            if (freeLength > 0)
            {
                FreeLater(freeOffset, freeLength);
            }
        }
    }

    /// <summary>Zeroes a range by writing zero bytes, unless it already reads as zeroes.</summary>
    private async ValueTask ZeroBytesAsync(long offset, long length, ZeroFlags flags, CancellationToken cancellationToken)
    {
        long end = offset + length;
        byte[]? zeroes = null;
        while (offset < end)
        {
            Qcow2MappedRun run;
            await _metadataLock.WaitAsync(cancellationToken);
            try
            {
                run = await MapRunLocked(offset, end - offset, cancellationToken);
            }
            finally
            {
                _metadataLock.Release();
            }

            long n = run.Length;
            bool alreadyZero = run.Kind == Qcow2ClusterKind.Zero
                || (run.Kind == Qcow2ClusterKind.Unallocated && (Backing is null || Backing.Size <= offset));
            if (!alreadyZero)
            {
                if ((flags & ZeroFlags.NoFallback) != 0)
                {
                    throw BlockException.NotSupported("qcow2: zeroing part of a cluster needs a write of zero bytes");
                }

                zeroes ??= new byte[Math.Min(1 << 20, (int)Math.Min(length, int.MaxValue))];
                n = Math.Min(n, zeroes.Length);
                await WriteAsync(offset, zeroes.AsMemory(0, (int)n), WriteFlags.None, cancellationToken);
            }

            offset += n;
        }
    }

    /// <summary>Changes the L2 entries of whole clusters (zero flag, discard, deallocation), freeing what they owned.</summary>
    private async ValueTask UpdateClustersAsync(long first, long count, Qcow2ClusterUpdate update, CancellationToken cancellationToken)
    {
        long c = first;
        long end = first + count;
        while (c < end)
        {
            Task? wait = null;
            await _metadataLock.WaitAsync(cancellationToken);
            try
            {
                long tableEnd = Math.Min(end, ((c >> _l2Bits) + 1) << _l2Bits);
                for (; c < tableEnd; c++)
                {
                    if (_inflight.ContainsKey(c))
                    {
                        wait = AllocationEndLocked(c);
                        break;
                    }

                    var table = await GetL2TableForLocked(c, allocate: false, cancellationToken);
                    ulong old = table is null ? 0 : table[c & (L2Entries - 1)];
                    ulong target = update switch
                    {
                        Qcow2ClusterUpdate.Zero => IsV3 && (Backing is not null || old != 0) ? Qcow2L2Entry.Zero : 0,
                        Qcow2ClusterUpdate.Discard => Backing is not null && IsV3 ? Qcow2L2Entry.Zero : 0,
                        _ => 0,
                    };
                    if (target == old)
                    {
                        if (table is null)
                        {
                            // No L2 table: the whole table's range is already unallocated.
                            c = tableEnd - 1;
                        }

                        continue;
                    }

                    await CheckOwnedRangeLocked(old);
                    table ??= await GetL2TableForLocked(c, allocate: true, cancellationToken);
                    table![c & (L2Entries - 1)] = target;
                    MarkL2Dirty(c);
                    var (freeOffset, freeLength) = OwnedHostRange(old);
                    if (freeLength > 0)
                    {
                        FreeLater(freeOffset, freeLength);
                    }
                }
            }
            finally
            {
                _metadataLock.Release();
            }

            if (wait is not null)
            {
                await wait;
            }
        }
    }
}
