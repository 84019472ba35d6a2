using System.Runtime.InteropServices;

namespace Strata.Formats.Qcow2;

/// <summary>
/// Which host clusters hold metadata, kept up to date as the tables change, so that checking a write
/// against the header, the L1 table, the refcount table, every refcount block, every active L2
/// table, the bitmap directory and every bitmap table (QEMU's "cached" overlap-check set, block/qcow2-refcount.c qcow2_check_metadata_overlap) is a
/// range comparison for the three fixed structures and one lookup per cluster for the others, never a
/// walk of the tables.
/// </summary>
/// <remarks>
/// L2 tables and refcount blocks are counted per host cluster, because a damaged image may point two
/// entries at one cluster: the cluster stays metadata until the last entry pointing at it changes.
/// Not thread-safe: the node uses it under its metadata lock.
/// </remarks>
internal sealed class Qcow2MetadataMap
{
    private readonly int _clusterBits;

    // Host cluster → how many L1 entries name it as their L2 table, how many refcount table entries
    // name it as their refcount block, and how many bitmap directory entries cover it with their table.
    private readonly Dictionary<long, (int L2Tables, int RefcountBlocks, int BitmapTables)> _clusters = [];

    // Cluster ranges [first, end) of the two tables the header points to.
    private long _l1First;
    private long _l1End;
    private long _refcountTableFirst;
    private long _refcountTableEnd;
    private long _bitmapDirectoryFirst;
    private long _bitmapDirectoryEnd;

    public Qcow2MetadataMap(int clusterBits) => _clusterBits = clusterBits;

    /// <summary>QEMU's names for the kinds (metadata_ol_names), so messages read like QEMU's.</summary>
    public static string Describe(Qcow2MetadataKind kind) => kind switch
    {
        Qcow2MetadataKind.Header => "qcow2_header",
        Qcow2MetadataKind.L1Table => "active L1 table",
        Qcow2MetadataKind.L2Table => "active L2 table",
        Qcow2MetadataKind.RefcountTable => "refcount table",
        Qcow2MetadataKind.RefcountBlock => "refcount block",
        Qcow2MetadataKind.BitmapDirectory => "bitmap directory",
        Qcow2MetadataKind.BitmapTable => "bitmap table",
        _ => "metadata",
    };

    public void SetL1Table(long offset, long bytes) => (_l1First, _l1End) = ClusterRange(offset, bytes);

    public void SetRefcountTable(long offset, long bytes) => (_refcountTableFirst, _refcountTableEnd) = ClusterRange(offset, bytes);

    /// <summary>The bitmap directory's range (0 bytes: none).</summary>
    public void SetBitmapDirectory(long offset, long bytes) => (_bitmapDirectoryFirst, _bitmapDirectoryEnd) = ClusterRange(offset, bytes);

    /// <summary>Counts an L1 entry's L2 table (offset 0: no table, nothing counted).</summary>
    public void AddL2Table(long offset) => Change(offset, (1, 0, 0));

    public void RemoveL2Table(long offset) => Change(offset, (-1, 0, 0));

    /// <summary>Counts a refcount table entry's block (offset 0: no block, nothing counted).</summary>
    public void AddRefcountBlock(long offset) => Change(offset, (0, 1, 0));

    public void RemoveRefcountBlock(long offset) => Change(offset, (0, -1, 0));

    /// <summary>Counts every cluster of a bitmap table of <paramref name="bytes"/> bytes.</summary>
    public void AddBitmapTable(long offset, long bytes) => ChangeRange(offset, bytes, 1);

    public void RemoveBitmapTable(long offset, long bytes) => ChangeRange(offset, bytes, -1);

    /// <summary>True when more than one refcount table entry names the block at <paramref name="offset"/> (a damaged table).</summary>
    public bool IsSharedRefcountBlock(long offset)
        => _clusters.TryGetValue(offset >> _clusterBits, out var owners) && owners.RefcountBlocks > 1;

    /// <summary>
    /// The metadata the host range [offset, offset + length) touches, other than the kinds in
    /// <paramref name="ignore"/> (a table being written back ignores its own kind); the first found in
    /// QEMU's order (header, L1 table, refcount table, L2 tables, refcount blocks), or None.
    /// </summary>
    public Qcow2MetadataKind FindOverlap(long offset, long length, Qcow2MetadataKind ignore)
    {
        if (length <= 0)
        {
            return Qcow2MetadataKind.None;
        }

        long first = offset >> _clusterBits;
        long last = (offset + length - 1) >> _clusterBits;
        if (first == 0 && (ignore & Qcow2MetadataKind.Header) == 0)
        {
            return Qcow2MetadataKind.Header;
        }

        if ((ignore & Qcow2MetadataKind.L1Table) == 0 && first < _l1End && last >= _l1First)
        {
            return Qcow2MetadataKind.L1Table;
        }

        if ((ignore & Qcow2MetadataKind.RefcountTable) == 0 && first < _refcountTableEnd && last >= _refcountTableFirst)
        {
            return Qcow2MetadataKind.RefcountTable;
        }

        if ((ignore & Qcow2MetadataKind.BitmapDirectory) == 0 && first < _bitmapDirectoryEnd && last >= _bitmapDirectoryFirst)
        {
            return Qcow2MetadataKind.BitmapDirectory;
        }

        var wanted = ~ignore & (Qcow2MetadataKind.L2Table | Qcow2MetadataKind.RefcountBlock | Qcow2MetadataKind.BitmapTable);
        if (wanted == Qcow2MetadataKind.None)
        {
            return Qcow2MetadataKind.None;
        }

        // One lookup per cluster of the range, or one pass over the map when it is the smaller.
        var found = Qcow2MetadataKind.None;
        if (last - first < _clusters.Count)
        {
            for (long c = first; c <= last; c++)
            {
                if (_clusters.TryGetValue(c, out var owners))
                {
                    found |= Kinds(owners) & wanted;
                }
            }
        }
        else
        {
            foreach (var (c, owners) in _clusters)
            {
                if (c >= first && c <= last)
                {
                    found |= Kinds(owners) & wanted;
                }
            }
        }

        // QEMU's order: L2 tables before refcount blocks before bitmap tables.
        return (found & Qcow2MetadataKind.L2Table) != 0 ? Qcow2MetadataKind.L2Table
            : (found & Qcow2MetadataKind.RefcountBlock) != 0 ? Qcow2MetadataKind.RefcountBlock
            : found;
    }

    private static Qcow2MetadataKind Kinds((int L2Tables, int RefcountBlocks, int BitmapTables) owners)
        => (owners.L2Tables > 0 ? Qcow2MetadataKind.L2Table : Qcow2MetadataKind.None)
            | (owners.RefcountBlocks > 0 ? Qcow2MetadataKind.RefcountBlock : Qcow2MetadataKind.None)
            | (owners.BitmapTables > 0 ? Qcow2MetadataKind.BitmapTable : Qcow2MetadataKind.None);

    private (long First, long End) ClusterRange(long offset, long bytes)
        => bytes <= 0 ? (0, 0) : (offset >> _clusterBits, ((offset + bytes - 1) >> _clusterBits) + 1);

    private void ChangeRange(long offset, long bytes, int delta)
    {
        var (first, end) = ClusterRange(offset, bytes);
        for (long c = first; c < end; c++)
        {
            Change(c << _clusterBits, (0, 0, delta));
        }
    }

    private void Change(long offset, (int L2Tables, int RefcountBlocks, int BitmapTables) delta)
    {
        if (offset == 0)
        {
            return;
        }

        long cluster = offset >> _clusterBits;
        ref var owners = ref CollectionsMarshal.GetValueRefOrAddDefault(_clusters, cluster, out _);
        owners = (owners.L2Tables + delta.L2Tables, owners.RefcountBlocks + delta.RefcountBlocks, owners.BitmapTables + delta.BitmapTables);
        if (owners is { L2Tables: <= 0, RefcountBlocks: <= 0, BitmapTables: <= 0 })
        {
            _clusters.Remove(cluster);
        }
    }
}
