using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>
/// Metadata overlap protection, as QEMU's (block/qcow2-refcount.c, qcow2_pre_write_overlap_check):
/// every write to the image file, guest data and metadata alike, and every cluster the allocator hands
/// out or frees is checked against the metadata map. A hit means the refcounts or a mapping are wrong;
/// the operation is refused, the image is marked corrupt (qcow2.txt, incompatible bit 1) and takes no
/// more writes, so a guest can never overwrite its header or tables however damaged the image is.
/// </summary>
public sealed partial class Qcow2Node
{
    // Host clusters holding metadata (header, L1 table, refcount table, refcount blocks, active L2
    // tables, and on a writable image the bitmap directory and tables). Protected by the metadata
    // lock; changed with every L1 and refcount table entry, every table move and every new bitmap
    // directory, never rebuilt by walking the tables.
    private readonly Qcow2MetadataMap _metadata;

    private static Qcow2MetadataMap MapMetadata(Qcow2Header header, ulong[] l1, ulong[] refcountTable)
    {
        var map = new Qcow2MetadataMap(header.ClusterBits);
        map.SetL1Table(header.L1TableOffset, header.L1Size * 8L);
        map.SetRefcountTable(header.RefcountTableOffset, (long)header.RefcountTableClusters << header.ClusterBits);
        foreach (ulong entry in l1)
        {
            map.AddL2Table(Qcow2L2Entry.HostOffset(entry));
        }

        foreach (ulong entry in refcountTable)
        {
            map.AddRefcountBlock((long)(entry & RefcountTableOffsetMask));
        }

        return map;
    }

    /// <summary>
    /// Refuses <paramref name="action"/> on the host range [offset, offset + length) when it touches
    /// metadata other than <paramref name="ignore"/> (what is being written back): marks the image
    /// corrupt and throws. The common case is one map lookup and no allocation.
    /// </summary>
    private ValueTask CheckOverlapLocked(long offset, long length, Qcow2MetadataKind ignore, string action)
    {
        var hit = _metadata.FindOverlap(offset, length, ignore);
        return hit == Qcow2MetadataKind.None ? ValueTask.CompletedTask : RefuseLockedAsync(hit, offset, action);
    }

    private async ValueTask RefuseLockedAsync(Qcow2MetadataKind hit, long offset, string action)
    {
        await MarkCorruptLockedAsync();
        throw BlockException.Corrupt(
            $"qcow2 image '{FileName}': preventing invalid {action} at host offset 0x{offset:x} (overlaps with {Qcow2MetadataMap.Describe(hit)}); image marked as corrupt");
    }

    /// <summary>Writes metadata of kind <paramref name="kind"/> (None: a table not yet in the map) after checking it overlaps nothing else.</summary>
    private async ValueTask WriteMetadataLocked(long offset, ReadOnlyMemory<byte> bytes, Qcow2MetadataKind kind, CancellationToken cancellationToken)
    {
        await CheckOverlapLocked(offset, bytes.Length, kind, "write on metadata");
        await _file.WriteAsync(offset, bytes, WriteFlags.None, cancellationToken);
    }

    /// <summary>Refuses to free what an L2 entry owns when that is metadata (a compressed or zero cluster pointing into a table).</summary>
    private ValueTask CheckOwnedRangeLocked(ulong entry)
    {
        var (offset, length) = OwnedHostRange(entry);
        return length > 0 ? CheckOverlapLocked(offset, length, Qcow2MetadataKind.None, "free of a guest cluster's host clusters") : ValueTask.CompletedTask;
    }

    /// <summary>As <see cref="MarkCorruptAsync"/>, for a caller holding the metadata lock.</summary>
    private async ValueTask MarkCorruptLockedAsync()
    {
        if (_readOnly || _markedCorrupt)
        {
            return;
        }

        _markedCorrupt = true;
        await WriteCorruptBitLocked();
    }

    private async ValueTask WriteCorruptBitLocked()
    {
        try
        {
            await WriteIncompatibleFeaturesAsync(_header.IncompatibleFeatures | Qcow2Features.IncompatibleCorrupt, CancellationToken.None);
        }
        catch (BlockException)
        {
            // The file itself fails: the in-memory flag still stops further writes.
        }
    }
}
