using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>Guest to host mapping: classifying L2 entries and merging runs of clusters.</summary>
public sealed partial class Qcow2Node
{
    private Qcow2ClusterKind Classify(ulong entry, long guestCluster)
    {
        if (Qcow2L2Entry.IsCompressed(entry))
        {
            return Qcow2ClusterKind.Compressed;
        }

        if (IsV3 && (entry & Qcow2L2Entry.Zero) != 0)
        {
            return Qcow2ClusterKind.Zero;
        }

        long host = Qcow2L2Entry.HostOffset(entry);
        if (host == 0)
        {
            return Qcow2ClusterKind.Unallocated;
        }

        if ((host & (_clusterSize - 1)) != 0 || host >= _file.Size)
        {
            throw BlockException.Corrupt($"qcow2: the L2 entry of guest offset 0x{guestCluster << _clusterBits:x} points to an invalid host offset 0x{host:x}");
        }

        return Qcow2ClusterKind.Normal;
    }

    /// <summary>
    /// Maps the run starting at <paramref name="offset"/>: clusters of the same kind (normal ones at
    /// contiguous host offsets), within one L2 table, at most <paramref name="maxLength"/> bytes.
    /// </summary>
    private async ValueTask<Qcow2MappedRun> MapRunLocked(long offset, long maxLength, CancellationToken cancellationToken)
    {
        long cluster = offset >> _clusterBits;
        long inCluster = offset & (_clusterSize - 1);
        long tableEnd = ((cluster >> _l2Bits) + 1) << _l2Bits;
        long limit = Math.Min(maxLength, (tableEnd << _clusterBits) - offset);
        var table = await GetL2TableForLocked(cluster, allocate: false, cancellationToken);
        if (table is null)
        {
            return new Qcow2MappedRun(Qcow2ClusterKind.Unallocated, -1, limit, 0);
        }

        long mask = L2Entries - 1;
        ulong entry = table[cluster & mask];
        var kind = Classify(entry, cluster);
        long host = kind == Qcow2ClusterKind.Normal ? Qcow2L2Entry.HostOffset(entry) + inCluster : -1;
        long length = Math.Min(_clusterSize - inCluster, limit);
        long nextHost = kind == Qcow2ClusterKind.Normal ? Qcow2L2Entry.HostOffset(entry) + _clusterSize : -1;
        for (long c = cluster + 1; length < limit; c++)
        {
            ulong next = table[c & mask];
            var nextKind = Classify(next, c);
            if (nextKind != kind || kind == Qcow2ClusterKind.Compressed)
            {
                break;
            }

            if (kind == Qcow2ClusterKind.Normal)
            {
                if (Qcow2L2Entry.HostOffset(next) != nextHost)
                {
                    break;
                }

                nextHost += _clusterSize;
            }

            length = Math.Min(length + _clusterSize, limit);
        }

        return new Qcow2MappedRun(kind, host, length, entry);
    }

    /// <summary>Fills <paramref name="cluster"/> with the current content of a guest cluster that is not a normal one.</summary>
    private async ValueTask ReadClusterContentAsync(long guestCluster, ulong entry, Memory<byte> cluster, CancellationToken cancellationToken)
    {
        switch (Classify(entry, guestCluster))
        {
            case Qcow2ClusterKind.Unallocated:
                await BackingReader.ReadAsync(Backing, guestCluster << _clusterBits, cluster, cancellationToken);
                break;
            case Qcow2ClusterKind.Zero:
                cluster.Span.Clear();
                break;
            case Qcow2ClusterKind.Compressed:
                await ReadCompressedAsync(guestCluster, entry, cluster, cancellationToken);
                break;
            default:
                await _file.ReadAsync(Qcow2L2Entry.HostOffset(entry), cluster, cancellationToken);
                break;
        }
    }

    private async ValueTask ReadCompressedAsync(long guestCluster, ulong entry, Memory<byte> cluster, CancellationToken cancellationToken)
    {
        var (offset, length) = Qcow2L2Entry.CompressedRange(entry, _clusterBits);
        long fileSize = _file.Size;
        if (offset >= fileSize || length <= 0)
        {
            throw BlockException.Corrupt($"qcow2: the compressed cluster of guest offset 0x{guestCluster << _clusterBits:x} lies outside the file (host offset 0x{offset:x})");
        }

        var compressed = new byte[length];
        int available = (int)Math.Min(length, fileSize - offset);
        await _file.ReadAsync(offset, compressed.AsMemory(0, available), cancellationToken);
        Qcow2Compression.Decompress(_header.CompressionType, compressed, cluster.Span, guestCluster << _clusterBits);
    }

    /// <summary>The host clusters an entry owns, to free when the entry is replaced (length 0: none).</summary>
    private (long Offset, long Length) OwnedHostRange(ulong entry)
    {
        if (Qcow2L2Entry.IsCompressed(entry))
        {
            var (offset, length) = Qcow2L2Entry.CompressedRange(entry, _clusterBits);
            return (offset, length);
        }

        long host = Qcow2L2Entry.HostOffset(entry);
        return host == 0 ? (0, 0) : (host, _clusterSize);
    }
}
