using System.Buffers;
using System.Buffers.Binary;
using Strata.Block;
using Strata.Block.Graph;

namespace Strata.Formats.Qcow2;

/// <summary>
/// A qcow2 image (docs/interop/qcow2.txt) on a file node, with an optional backing node.
/// </summary>
/// <remarks>
/// One metadata lock serializes access to the L1 table, the L2 and refcount caches, the refcount
/// table and the allocator; it is never held across guest data I/O. Data is written before the L2
/// entry that points to it; at flush, refcount blocks are made durable before L2 tables, and L2 tables
/// before the L1 table (docs/formats/qcow2.md). Clusters are freed only after the metadata that
/// dropped them is durable, so a crash may leak clusters but never corrupts.
/// </remarks>
public sealed partial class Qcow2Node : IBackedLayer, IBackingFileRecord
{
    public const int Magic = 0x514649fb;

    private const int CacheBytes = 4 * 1024 * 1024;

    private readonly IBlockNode _file;
    private readonly Qcow2Header _header;
    private readonly bool _readOnly;
    private readonly int _clusterBits;
    private readonly int _clusterSize;
    private readonly int _l2Bits;
    private readonly int _refcountOrder;
    private readonly int _refBlockBits;

    // Protects _l1, _l1Dirty*, _refcountTable, _refcountTableDirty, both caches, _metadata, _inflight,
    // _pendingFrees, _freeCursor, _size and the header fields. Never held across guest data I/O.
    private readonly SemaphoreSlim _metadataLock = new(1, 1);
    private readonly Qcow2MetadataCache<ulong[]> _l2Cache;
    private readonly Qcow2MetadataCache<byte[]> _refcountCache;
    // Clusters an allocating write is filling, each with the signal its end gives to requests that
    // wait for it (made by the first of them: see AllocationEndLocked).
    private readonly Dictionary<long, TaskCompletionSource?> _inflight = [];
    private readonly List<(long Offset, long Length)> _pendingFrees = [];
    // Guest reads and in-place writes that looked up a host offset and have not finished their file
    // I/O. Clusters are freed only when none is in flight, so such an I/O never lands in a cluster
    // that was freed and handed to another guest cluster meanwhile.
    private int _dataIoInFlight;
    private ulong[] _l1;
    private int _l1DirtyFirst = int.MaxValue;
    private int _l1DirtyLast = -1;
    private ulong[] _refcountTable;
    private bool _refcountTableDirty;
    private long _freeCursor;
    private long _size;
    private bool _dirtyBitSetByUs;
    private bool _disposed;
    private bool _openFailed;
    private bool _markedCorrupt;

    private Qcow2Node(IBlockNode file, Qcow2Header header, bool readOnly, ulong[] l1, ulong[] refcountTable)
    {
        _file = file;
        _header = header;
        _readOnly = readOnly;
        _clusterBits = header.ClusterBits;
        _clusterSize = header.ClusterSize;
        _l2Bits = _clusterBits - 3;
        _refcountOrder = header.RefcountOrder;
        _refBlockBits = _clusterBits + 3 - _refcountOrder;
        _l1 = l1;
        _refcountTable = refcountTable;
        _metadata = MapMetadata(header, l1, refcountTable);
        _size = header.Size;
        _l2Cache = new Qcow2MetadataCache<ulong[]>(CacheBytes / _clusterSize);
        _refcountCache = new Qcow2MetadataCache<byte[]>(CacheBytes / 4 / _clusterSize);
    }

    public string DriverName => "qcow2";

    public string? FileName => File.FileName;

    public long Size => Volatile.Read(ref _size);

    public NodeCapabilities Capabilities
        => _readOnly ? NodeCapabilities.ReadOnly
            : NodeCapabilities.Fua | NodeCapabilities.Discard | NodeCapabilities.WriteZeroes | NodeCapabilities.Resize
                | (_header.Version >= 3 ? NodeCapabilities.FastZero : NodeCapabilities.None);

    public NodeLimits Limits => new(1, _clusterSize, NodeLimits.DefaultMaxTransfer);

    /// <summary>The node unallocated clusters read from: the node of <see cref="BackingEdge"/>.</summary>
    public IBlockNode? Backing => BackingEdge.Node;

    /// <inheritdoc/>
    public BackingEdge BackingEdge { get; } = new();

    /// <inheritdoc/>
    public string? BackingFileName => _header.BackingFile;

    /// <inheritdoc/>
    public string? BackingFormat => _header.BackingFormat;

    /// <summary>The node holding the image's bytes (the "file" child); owned by this node.</summary>
    public IBlockNode File => _file;

    /// <summary>Header facts for <c>info</c>; backing file name and format as recorded.</summary>
    public Qcow2Info Info => new()
    {
        Version = _header.Version,
        ClusterSize = _clusterSize,
        RefcountBits = _header.RefcountBits,
        LazyRefcounts = (_header.CompatibleFeatures & Qcow2Features.CompatibleLazyRefcounts) != 0,
        Corrupt = (_header.IncompatibleFeatures & Qcow2Features.IncompatibleCorrupt) != 0,
        Dirty = (_header.IncompatibleFeatures & Qcow2Features.IncompatibleDirty) != 0 && !_dirtyBitSetByUs,
        CompressionType = _header.CompressionType == Qcow2Compression.Zstd ? "zstd" : "zlib",
        BackingFile = _header.BackingFile,
        BackingFormat = _header.BackingFormat,
    };

    /// <summary>Internal snapshots recorded in the header (read-only access only when non-zero).</summary>
    public int SnapshotCount => _header.NbSnapshots;

    private bool IsV3 => _header.Version >= 3;

    /// <summary>
    /// Opens the image in <paramref name="file"/>, validating every header field, table size and offset.
    /// Does not open the backing file: the caller resolves <see cref="Qcow2Info.BackingFile"/> and calls
    /// attaches it to <see cref="BackingEdge"/>. Read-write opening sets the dirty bit when lazy refcounts are on and
    /// clears unknown autoclear bits; an image marked corrupt opens read-only only.
    /// </summary>
    public static ValueTask<Qcow2Node> OpenAsync(IBlockNode file, bool readOnly, CancellationToken cancellationToken = default)
        => OpenCoreAsync(file, readOnly, forRepair: false, cancellationToken);

    /// <summary>
    /// Opens the image read-write for <c>check -r</c>: unlike <see cref="OpenAsync"/>, an image marked
    /// corrupt is accepted (guest writes stay refused); a repair that leaves no corruption clears the
    /// corrupt bit.
    /// </summary>
    public static ValueTask<Qcow2Node> OpenForRepairAsync(IBlockNode file, CancellationToken cancellationToken = default)
        => OpenCoreAsync(file, readOnly: false, forRepair: true, cancellationToken);

    private static async ValueTask<Qcow2Node> OpenCoreAsync(IBlockNode file, bool readOnly, bool forRepair, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(file);
        long fileSize = file.Size;

        // The header, its extensions and the backing file name lie in the first cluster (qcow2.txt,
        // "Header"). Read the common 64 KiB first, and more only if the image's clusters are larger.
        var first = new byte[(int)Math.Min(fileSize, 1 << 16)];
        await file.ReadAsync(0, first, cancellationToken);
        if (first.Length >= 24 && BinaryPrimitives.ReadUInt32BigEndian(first.AsSpan(20)) is var bits and > 16 and <= 21 && fileSize > first.Length)
        {
            first = new byte[(int)Math.Min(fileSize, 1L << (int)bits)];
            await file.ReadAsync(0, first, cancellationToken);
        }

        var header = Qcow2Header.Parse(first, fileSize);
        if (!readOnly)
        {
            if ((header.IncompatibleFeatures & Qcow2Features.IncompatibleCorrupt) != 0 && !forRepair)
            {
                throw BlockException.Corrupt("qcow2: the image is marked corrupt; it can only be opened read-only (repair it with 'check -r all')");
            }

            if (header.NbSnapshots > 0)
            {
                throw BlockException.NotSupported($"qcow2: the image has {header.NbSnapshots} internal snapshot(s); it can only be opened read-only");
            }
        }

        var l1 = await ReadTableAsync(file, header.L1TableOffset, header.L1Size, cancellationToken);
        int refcountEntries = header.RefcountTableClusters * header.ClusterSize / 8;
        var refcountTable = await ReadTableAsync(file, header.RefcountTableOffset, refcountEntries, cancellationToken);
        var node = new Qcow2Node(file, header, readOnly, l1, refcountTable)
        {
            _markedCorrupt = !readOnly && (header.IncompatibleFeatures & Qcow2Features.IncompatibleCorrupt) != 0,
        };
        await node.LoadBitmapDirectoryAsync(cancellationToken);
        if (!readOnly)
        {
            try
            {
                await node.PrepareForWritingAsync(cancellationToken);
            }
            catch
            {
                node._openFailed = true;
                await node.DisposeAsync();
                throw;
            }
        }

        return node;
    }

    /// <summary>
    /// Passes the permissions on to the file as the metadata needs them; the backing node's are its
    /// attacher's to set. An image opened read-write whose user no longer writes (a snapshot's frozen
    /// base) asks what QEMU's image reopened read-only asks.
    /// </summary>
    public void SetPermissions(NodePermissions permissions, PermissionCheck check)
        => _file.SetPermissions(permissions.ForMetadataFile(!_readOnly && (permissions.Held & ~BlockPermissions.ConsistentRead) != 0), check);

    /// <summary>
    /// Flushes, clears the dirty bit if this node set it, and closes the file node; the backing node
    /// only when its edge owns it (<see cref="BackingEdge.CloseAsync"/>): otherwise its opener does.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            if (!_readOnly && !_openFailed && !_markedCorrupt)
            {
                await _metadataLock.WaitAsync();
                try
                {
                    await SaveTrackedBitmapsLocked(CancellationToken.None);
                    await FlushAllLockedAsync(CancellationToken.None);
                    if (_dirtyBitSetByUs)
                    {
                        await WriteIncompatibleFeaturesAsync(_header.IncompatibleFeatures & ~Qcow2Features.IncompatibleDirty, CancellationToken.None);
                        _dirtyBitSetByUs = false;
                    }
                }
                finally
                {
                    _metadataLock.Release();
                }
            }
        }
        finally
        {
            await _file.DisposeAsync();
            await BackingEdge.CloseAsync();

            _metadataLock.Dispose();
        }
    }

    private static async ValueTask<ulong[]> ReadTableAsync(IBlockNode file, long offset, int entries, CancellationToken cancellationToken)
    {
        var table = new ulong[entries];
        if (entries > 0)
        {
            var bytes = ArrayPool<byte>.Shared.Rent(entries * 8);
            try
            {
                await file.ReadAsync(offset, bytes.AsMemory(0, entries * 8), cancellationToken);
                for (int i = 0; i < entries; i++)
                {
                    table[i] = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(i * 8));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(bytes);
            }
        }

        return table;
    }

    private static byte[] SerializeTable(ReadOnlySpan<ulong> table, int length)
    {
        var bytes = new byte[length];
        for (int i = 0; i < table.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), table[i]);
        }

        return bytes;
    }

    /// <summary>Read-write open: rebuild refcounts of a dirty image, keep only the autoclear bits kept true, set the dirty bit for lazy refcounts.</summary>
    private async ValueTask PrepareForWritingAsync(CancellationToken cancellationToken)
    {
        await _metadataLock.WaitAsync(cancellationToken);
        try
        {
            if ((_header.IncompatibleFeatures & Qcow2Features.IncompatibleDirty) != 0)
            {
                // qcow2.txt, "dirty bit": refcounts may be stale; rebuild them before any write.
                await CheckLockedAsync(Qcow2RepairMode.All, cancellationToken);
                await FlushAllLockedAsync(cancellationToken);
                await WriteIncompatibleFeaturesAsync(_header.IncompatibleFeatures & ~Qcow2Features.IncompatibleDirty, cancellationToken);
            }

            // Autoclear bits describe extensions a writer keeps up to date (qcow2.txt, "autoclear
            // features"): bit 0 stays while the bitmaps extension is consistent, as this driver
            // keeps it so; every other bit is cleared. An extension already found inconsistent is
            // dropped with the next header (its clusters leak, as with QEMU: a later check frees them).
            ulong autoclear = _header.Bitmaps is not null ? Qcow2Features.AutoclearBitmaps : 0;
            if (_header.BitmapsIgnored || (IsV3 && _header.AutoclearFeatures != autoclear))
            {
                _header.AutoclearFeatures = IsV3 ? autoclear : 0;
                _header.BitmapsIgnored = false;
                await WriteHeaderClusterLocked(cancellationToken);
            }

            if (IsV3 && (_header.CompatibleFeatures & Qcow2Features.CompatibleLazyRefcounts) != 0)
            {
                await WriteIncompatibleFeaturesAsync(_header.IncompatibleFeatures | Qcow2Features.IncompatibleDirty, cancellationToken);
                _dirtyBitSetByUs = true;
            }
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    private async ValueTask WriteIncompatibleFeaturesAsync(ulong value, CancellationToken cancellationToken)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        await WriteMetadataLocked(Qcow2Header.OffsetIncompatible, bytes, Qcow2MetadataKind.Header, cancellationToken);
        await _file.FlushAsync(cancellationToken);
        _header.IncompatibleFeatures = value;
    }

    private void CheckWritable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_readOnly)
        {
            throw BlockException.ReadOnly($"qcow2 image '{FileName}' is open read-only");
        }

        if (_markedCorrupt)
        {
            throw BlockException.Corrupt($"qcow2 image '{FileName}' was marked corrupt; it takes no more writes (repair it with 'check -r all')");
        }
    }

    /// <summary>
    /// Sets the corrupt bit (qcow2.txt, incompatible bit 1) after a write met inconsistent metadata, as
    /// QEMU does, so no further write can make it worse; the cached metadata is not written back.
    /// </summary>
    private async ValueTask MarkCorruptAsync()
    {
        if (_readOnly || _markedCorrupt)
        {
            return;
        }

        _markedCorrupt = true;
        await _metadataLock.WaitAsync();
        try
        {
            await WriteCorruptBitLocked();
        }
        finally
        {
            _metadataLock.Release();
        }
    }
}
