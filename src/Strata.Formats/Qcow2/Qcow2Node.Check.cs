using System.Buffers.Binary;
using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>
/// Consistency check and repair (qemu-img check): counts every reference to every host cluster from
/// the header, L1/L2 tables, snapshots, bitmaps and the refcount structure, and compares with the refcounts.
/// Messages use qemu-img's wording.
/// </summary>
public sealed partial class Qcow2Node : IImageCheck
{
    // While a repair runs: references per host cluster, so new refcount blocks avoid used clusters.
    private uint[]? _repairReferences;

    /// <summary>Walks all metadata, compares refcounts with references, optionally repairs (qemu-img check).</summary>
    public async ValueTask<ImageCheckResult> CheckAsync(Qcow2RepairMode repair, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (repair != Qcow2RepairMode.None && _readOnly)
        {
            throw BlockException.ReadOnly($"qcow2 image '{FileName}' is open read-only; a repair needs it read-write");
        }

        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            return await CheckLockedAsync(repair, cancellationToken);
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    ValueTask<ImageCheckResult> IImageCheck.CheckAsync(ImageRepair repair, CancellationToken cancellationToken) => CheckAsync(repair switch
    {
        ImageRepair.None => Qcow2RepairMode.None,
        ImageRepair.Leaks => Qcow2RepairMode.Leaks,
        _ => Qcow2RepairMode.All,
    }, cancellationToken);

    private async ValueTask<ImageCheckResult> CheckLockedAsync(Qcow2RepairMode repair, CancellationToken cancellationToken)
    {
        // A node marked corrupt while open writes no more metadata unless asked to repair.
        if (!_readOnly && (!_markedCorrupt || repair != Qcow2RepairMode.None))
        {
            await FlushAllLockedAsync(cancellationToken);
        }

        var first = await ScanLockedAsync(repair, cancellationToken);
        if (repair == Qcow2RepairMode.None || (first.LeaksFixed == 0 && first.CorruptionsFixed == 0))
        {
            if (_markedCorrupt && repair == Qcow2RepairMode.All && first.Corruptions == 0)
            {
                await WriteIncompatibleFeaturesAsync(_header.IncompatibleFeatures & ~Qcow2Features.IncompatibleCorrupt, cancellationToken);
                _markedCorrupt = false;
            }

            return first;
        }

        await FlushAllLockedAsync(cancellationToken);
        var second = await ScanLockedAsync(Qcow2RepairMode.None, cancellationToken);
        if (_markedCorrupt && second.Corruptions == 0 && repair == Qcow2RepairMode.All)
        {
            // Repaired: the image may take writes again (QEMU clears the bit after a successful repair).
            await WriteIncompatibleFeaturesAsync(_header.IncompatibleFeatures & ~Qcow2Features.IncompatibleCorrupt, cancellationToken);
            _markedCorrupt = false;
        }

        // The counts are those left after the repair; the messages are the repair's (a caller that
        // double-checks, as qemu-img does, prints the second pass itself).
        return second with
        {
            LeaksFixed = first.LeaksFixed,
            CorruptionsFixed = first.CorruptionsFixed,
            Messages = first.Messages,
        };
    }

    private async ValueTask<ImageCheckResult> ScanLockedAsync(Qcow2RepairMode repair, CancellationToken cancellationToken)
    {
        long fileSize = _file.Size;
        long nbClusters = (fileSize + _clusterSize - 1) >> _clusterBits;
        var scan = new Qcow2CheckScan(new uint[nbClusters], _clusterSize);

        scan.Count(0, _clusterSize);
        await CountL1Async(scan, _header.L1TableOffset, _l1, active: true, cancellationToken);
        if (_header.NbSnapshots > 0)
        {
            await CountSnapshotsAsync(scan, cancellationToken);
        }

        scan.Count(_header.RefcountTableOffset, (long)_header.RefcountTableClusters << _clusterBits);
        for (int i = 0; i < _refcountTable.Length; i++)
        {
            long offset = (long)(_refcountTable[i] & RefcountTableOffsetMask);
            if (offset == 0)
            {
                continue;
            }

            if ((offset & (_clusterSize - 1)) != 0)
            {
                scan.Error($"ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted");
            }
            else if (offset < 0 || offset >= fileSize)
            {
                scan.Error($"ERROR refcount block {i} is outside image");
            }
            else
            {
                scan.Count(offset, _clusterSize);
            }
        }

        await CountBitmapsAsync(scan, cancellationToken);

        long highest = -1;
        long leaksFixed = 0;
        long corruptionsFixed = 0;
        _repairReferences = repair != Qcow2RepairMode.None ? scan.References : null;
        try
        {
            for (long c = 0; c < nbClusters; c++)
            {
                ulong refcount = await SafeRefcountAsync(c, cancellationToken);
                ulong reference = scan.References[c];
                if (refcount > 0 || reference > 0)
                {
                    highest = c;
                }

                if (refcount == reference)
                {
                    continue;
                }

                bool fix = repair == Qcow2RepairMode.All || (repair == Qcow2RepairMode.Leaks && refcount > reference);
                if (fix)
                {
                    scan.Messages.Add($"Repairing cluster {c} refcount={refcount} reference={reference}");
                    await SetRefcountLocked(c, reference, cancellationToken);
                    if (refcount > reference)
                    {
                        leaksFixed++;
                    }
                    else
                    {
                        corruptionsFixed++;
                    }
                }
                else if (refcount < reference)
                {
                    scan.Messages.Add($"ERROR cluster {c} refcount={refcount} reference={reference}");
                    scan.Corruptions++;
                }
                else
                {
                    scan.Messages.Add($"Leaked cluster {c} refcount={refcount} reference={reference}");
                    scan.Leaks++;
                }
            }
        }
        finally
        {
            _repairReferences = null;
        }

        corruptionsFixed += await CheckCopiedFlagsLocked(scan, repair == Qcow2RepairMode.All, cancellationToken);
        return new ImageCheckResult
        {
            Corruptions = scan.Corruptions,
            Leaks = scan.Leaks,
            CheckErrors = scan.CheckErrors,
            LeaksFixed = leaksFixed,
            CorruptionsFixed = corruptionsFixed,
            ImageEndOffset = (highest + 1) << _clusterBits,
            TotalClusters = (Size + _clusterSize - 1) >> _clusterBits,
            AllocatedClusters = scan.Allocated,
            FragmentedClusters = scan.Fragmented,
            CompressedClusters = scan.Compressed,
            Messages = scan.Messages,
        };
    }

    /// <summary>
    /// Bit 63 of L1 and L2 entries must be set exactly when the refcount is 1 (qcow2.txt, "Cluster
    /// mapping"); QEMU's check_oflag_copied. Returns how many entries were repaired.
    /// </summary>
    private async ValueTask<long> CheckCopiedFlagsLocked(Qcow2CheckScan scan, bool repair, CancellationToken cancellationToken)
    {
        long fixedCount = 0;
        long fileSize = _file.Size;
        for (int i = 0; i < _l1.Length; i++)
        {
            ulong l1Entry = _l1[i];
            long l2Offset = Qcow2L2Entry.HostOffset(l1Entry);
            if (l2Offset == 0 || (l2Offset & (_clusterSize - 1)) != 0 || l2Offset >= fileSize)
            {
                continue;
            }

            ulong refcount = await SafeRefcountAsync(l2Offset >> _clusterBits, cancellationToken);
            if ((refcount == 1) != ((l1Entry & Qcow2L2Entry.Copied) != 0))
            {
                scan.Messages.Add($"{(repair ? "Repairing" : "ERROR")} OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={l1Entry:x} refcount={refcount}");
                if (repair)
                {
                    SetL1Entry(i, refcount == 1 ? l1Entry | Qcow2L2Entry.Copied : l1Entry & ~Qcow2L2Entry.Copied);
                    fixedCount++;
                }
                else
                {
                    scan.Corruptions++;
                }
            }

            var table = await GetL2TableLocked(l2Offset, cancellationToken);
            for (int j = 0; j < table.Length; j++)
            {
                ulong entry = table[j];
                long host = Qcow2L2Entry.HostOffset(entry);
                if (Qcow2L2Entry.IsCompressed(entry) || host == 0 || (host & (_clusterSize - 1)) != 0 || host >= fileSize)
                {
                    continue;
                }

                refcount = await SafeRefcountAsync(host >> _clusterBits, cancellationToken);
                if ((refcount == 1) != ((entry & Qcow2L2Entry.Copied) != 0))
                {
                    scan.Messages.Add($"{(repair ? "Repairing" : "ERROR")} OFLAG_COPIED data cluster: l2_entry={entry:x} refcount={refcount}");
                    if (repair)
                    {
                        table[j] = refcount == 1 ? entry | Qcow2L2Entry.Copied : entry & ~Qcow2L2Entry.Copied;
                        _l2Cache.MarkDirty(l2Offset);
                        fixedCount++;
                    }
                    else
                    {
                        scan.Corruptions++;
                    }
                }
            }
        }

        return fixedCount;
    }

    private async ValueTask<ulong> SafeRefcountAsync(long cluster, CancellationToken cancellationToken)
    {
        try
        {
            return await GetRefcountLocked(cluster, cancellationToken);
        }
        catch (BlockException e) when (e.Error == BlockError.Corrupt)
        {
            // A broken refcount table entry was reported already; its clusters count as refcount 0.
            return 0;
        }
    }

    private async ValueTask CountL1Async(Qcow2CheckScan scan, long l1Offset, ulong[] l1, bool active, CancellationToken cancellationToken)
    {
        long fileSize = _file.Size;
        if (l1.Length > 0)
        {
            scan.Count(l1Offset, l1.Length * 8L);
        }

        long nextContiguous = 0;
        for (int i = 0; i < l1.Length; i++)
        {
            long l2Offset = Qcow2L2Entry.HostOffset(l1[i]);
            if (l2Offset == 0)
            {
                continue;
            }

            if ((l2Offset & (_clusterSize - 1)) != 0)
            {
                scan.Error($"ERROR l2_offset={l2Offset:x}: Table is not cluster aligned; L1 entry corrupted");
                continue;
            }

            scan.Count(l2Offset, _clusterSize);
            if (l2Offset >= fileSize)
            {
                continue;
            }

            ulong[] table = active ? await GetL2TableLocked(l2Offset, cancellationToken)
                : await ReadTableAsync(_file, l2Offset, (int)L2Entries, cancellationToken);
            foreach (ulong entry in table)
            {
                if (Qcow2L2Entry.IsCompressed(entry))
                {
                    var (offset, length) = Qcow2L2Entry.CompressedRange(entry, _clusterBits);
                    if ((entry & Qcow2L2Entry.Copied) != 0)
                    {
                        scan.Error($"ERROR: coffset=0x{offset:x}: copied flag must never be set for compressed clusters");
                    }

                    if (active)
                    {
                        scan.Allocated++;
                        scan.Compressed++;
                        scan.Fragmented++;
                    }

                    scan.Count(offset, length);
                    continue;
                }

                long host = Qcow2L2Entry.HostOffset(entry);
                if (host == 0)
                {
                    continue;
                }

                if (active)
                {
                    scan.Allocated++;
                    if (nextContiguous != 0 && host != nextContiguous)
                    {
                        scan.Fragmented++;
                    }

                    nextContiguous = host + _clusterSize;
                }

                if ((host & (_clusterSize - 1)) != 0)
                {
                    scan.Error($"ERROR offset={host:x}: Cluster is not properly aligned; L2 entry corrupted.");
                    continue;
                }

                scan.Count(host, _clusterSize);
            }
        }
    }

    /// <summary>
    /// Counts the bitmap directory, each bitmap's table and its data clusters (qcow2.txt, "Bitmaps";
    /// QEMU's qcow2_check_bitmaps_refcounts), so they are neither leaks nor freed by a repair. An
    /// extension found inconsistent at open is not counted: its clusters are leaks, as for QEMU.
    /// </summary>
    private async ValueTask CountBitmapsAsync(Qcow2CheckScan scan, CancellationToken cancellationToken)
    {
        if (_header.Bitmaps is not { } extension)
        {
            return;
        }

        long fileSize = _file.Size;
        scan.Count(extension.DirectoryOffset, extension.DirectorySize);
        foreach (var entry in _bitmaps)
        {
            scan.Count(entry.TableOffset, entry.TableSize * 8L);
            var table = await ReadTableAsync(_file, entry.TableOffset, entry.TableSize, cancellationToken);
            for (int i = 0; i < table.Length; i++)
            {
                if (Qcow2BitmapTable.Problem(table[i], _clusterSize, fileSize) is { } problem)
                {
                    scan.Error($"ERROR bitmap '{entry.Name}' table entry {i}: {problem}");
                    continue;
                }

                long host = Qcow2BitmapTable.HostOffset(table[i]);
                if (host != 0)
                {
                    scan.Count(host, _clusterSize);
                }
            }
        }
    }

    /// <summary>Counts the snapshot table and each snapshot's L1 and L2 tables (qcow2.txt, "Snapshots").</summary>
    private async ValueTask CountSnapshotsAsync(Qcow2CheckScan scan, CancellationToken cancellationToken)
    {
        long fileSize = _file.Size;
        long offset = _header.SnapshotsOffset;
        long start = offset;
        var fixedPart = new byte[40];
        for (int i = 0; i < _header.NbSnapshots; i++)
        {
            if (offset + fixedPart.Length > fileSize)
            {
                scan.CheckErrors++;
                scan.Messages.Add($"ERROR snapshot table entry {i} lies outside the image");
                return;
            }

            await _file.ReadAsync(offset, fixedPart, cancellationToken);
            long l1Offset = (long)BinaryPrimitives.ReadUInt64BigEndian(fixedPart);
            uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(8));
            int idSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(12));
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(14));
            uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(36));
            long length = 40L + extraSize + idSize + nameSize;
            offset += (length + 7) & ~7L;
            if (l1Size > Qcow2Header.MaxL1Bytes / 8 || (l1Offset & (_clusterSize - 1)) != 0 || l1Offset + (l1Size * 8L) > fileSize)
            {
                scan.Error($"ERROR snapshot {i} has an invalid L1 table (offset 0x{l1Offset:x}, {l1Size} entries)");
                continue;
            }

            var l1 = await ReadTableAsync(_file, l1Offset, (int)l1Size, cancellationToken);
            await CountL1Async(scan, l1Offset, l1, active: false, cancellationToken);
        }

        scan.Count(start, offset - start);
    }
}
