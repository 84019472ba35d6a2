using System.Buffers.Binary;
using System.Text;

namespace Strata.TestKit;

/// <summary>
/// Writes a small qcow2 image byte by byte, so tests can craft hostile images one field at a time.
/// With no property changed the image is valid (qemu-img check finds nothing) and guest cluster 0
/// holds <see cref="DataPattern"/>. Every header field is a nullable override: null writes the value
/// the layout implies, anything else is written as given, however absurd.
/// </summary>
/// <remarks>
/// Layout, one cluster each unless said: 0 header (extensions, backing name), 1 refcount table,
/// 2 refcount block (16-bit refcounts of every cluster of the file), 3.. L1 table, then one L2 table
/// for L1[0], then one data cluster mapped at guest offset 0.
/// </remarks>
public sealed class Qcow2ImageBuilder
{
    private const ulong Copied = 1UL << 63;
    private readonly List<(long Offset, byte[] Bytes)> _patches = [];

    public Qcow2ImageBuilder(int clusterBits = 16, long size = 4 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(clusterBits, 9);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(clusterBits, 21);
        LayoutClusterBits = clusterBits;
        LayoutSize = size;
    }

    /// <summary>The cluster size the layout uses (the header field may lie: <see cref="ClusterBits"/>).</summary>
    public int LayoutClusterBits { get; }

    public long LayoutSize { get; }

    public int ClusterSize => 1 << LayoutClusterBits;

    public long RefcountTableOffsetDefault => ClusterSize;

    public long RefcountBlockOffset => 2L * ClusterSize;

    public long L1OffsetDefault => 3L * ClusterSize;

    public uint L1SizeDefault
    {
        get
        {
            long perL2 = (long)ClusterSize * (ClusterSize / 8);
            return (uint)Math.Max(1, (LayoutSize + perL2 - 1) / perL2);
        }
    }

    public long L1Clusters => ((L1SizeDefault * 8L) + ClusterSize - 1) / ClusterSize;

    public long L2Offset => L1OffsetDefault + (L1Clusters * ClusterSize);

    public long DataOffset => L2Offset + ClusterSize;

    /// <summary>Length of the well-formed file.</summary>
    public long FileLength => DataOffset + ClusterSize;

    public byte DataPattern { get; set; } = 0x5a;

    public uint? Magic { get; set; }

    /// <summary>2 writes a version 2 header (72 bytes, refcount order 4, no v3 fields).</summary>
    public uint Version { get; set; } = 3;

    public ulong? BackingFileOffset { get; set; }

    public uint? BackingFileSize { get; set; }

    /// <summary>Stored after the extensions in cluster 0.</summary>
    public string? BackingFile { get; set; }

    /// <summary>Stored in the backing-format extension.</summary>
    public string? BackingFormat { get; set; }

    public uint? ClusterBits { get; set; }

    public ulong? Size { get; set; }

    public uint? CryptMethod { get; set; }

    public uint? L1Size { get; set; }

    public ulong? L1TableOffset { get; set; }

    public ulong? RefcountTableOffset { get; set; }

    public uint? RefcountTableClusters { get; set; }

    public uint? NbSnapshots { get; set; }

    public ulong? SnapshotsOffset { get; set; }

    public ulong IncompatibleFeatures { get; set; }

    public ulong CompatibleFeatures { get; set; }

    public ulong AutoclearFeatures { get; set; }

    public uint? RefcountOrder { get; set; }

    public uint? HeaderLength { get; set; }

    /// <summary>Written after the backing-format extension, before the end marker.</summary>
    public IList<Qcow2Extension> Extensions { get; } = [];

    /// <summary>L1[0] as stored (default: the L2 table, COPIED).</summary>
    public ulong? L1Entry0 { get; set; }

    /// <summary>L2[0] as stored (default: the data cluster, COPIED).</summary>
    public ulong? L2Entry0 { get; set; }

    /// <summary>Refcount table entry 0 as stored (default: the refcount block).</summary>
    public ulong? RefcountTableEntry0 { get; set; }

    /// <summary>Cut the file to this length after building.</summary>
    public long? TruncateTo { get; set; }

    /// <summary>Extra bytes written over the built image (last word on any byte).</summary>
    public Qcow2ImageBuilder Patch(long offset, params byte[] bytes)
    {
        _patches.Add((offset, bytes));
        return this;
    }

    public Qcow2ImageBuilder PatchUInt64(long offset, ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return Patch(offset, bytes);
    }

    public Qcow2ImageBuilder PatchUInt32(long offset, uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return Patch(offset, bytes);
    }

    public byte[] Build()
    {
        int cs = ClusterSize;
        long length = FileLength;
        var image = new byte[length];
        var span = image.AsSpan();
        bool v2 = Version < 3;
        int headerLength = v2 ? Qcow2HeaderOffsets.V2HeaderLength : Qcow2HeaderOffsets.V3HeaderLength;

        // Extensions start right after the header (at header_length for version 3).
        int at = (int)(HeaderLength ?? (uint)headerLength);
        var extensions = new List<Qcow2Extension>();
        if (BackingFormat is not null)
        {
            extensions.Add(new Qcow2Extension(Qcow2HeaderOffsets.ExtensionBackingFormat, Encoding.ASCII.GetBytes(BackingFormat)));
        }

        extensions.AddRange(Extensions);
        foreach (var extension in extensions)
        {
            PutU32(span, at, extension.Type);
            PutU32(span, at + 4, extension.LengthOverride ?? (uint)extension.Data.Length);
            extension.Data.CopyTo(span[(at + 8)..]);
            at += 8 + ((extension.Data.Length + 7) & ~7);
        }

        PutU32(span, at, Qcow2HeaderOffsets.ExtensionEnd);
        PutU32(span, at + 4, 0);
        at += 8;
        byte[] backingName = BackingFile is null ? [] : Encoding.UTF8.GetBytes(BackingFile);
        backingName.CopyTo(span[at..]);

        PutU32(span, Qcow2HeaderOffsets.Magic, Magic ?? 0x514649fb);
        PutU32(span, Qcow2HeaderOffsets.Version, Version);
        PutU64(span, Qcow2HeaderOffsets.BackingFileOffset, BackingFileOffset ?? (BackingFile is null ? 0UL : (ulong)at));
        PutU32(span, Qcow2HeaderOffsets.BackingFileSize, BackingFileSize ?? (uint)backingName.Length);
        PutU32(span, Qcow2HeaderOffsets.ClusterBits, ClusterBits ?? (uint)LayoutClusterBits);
        PutU64(span, Qcow2HeaderOffsets.Size, Size ?? (ulong)LayoutSize);
        PutU32(span, Qcow2HeaderOffsets.CryptMethod, CryptMethod ?? 0);
        PutU32(span, Qcow2HeaderOffsets.L1Size, L1Size ?? L1SizeDefault);
        PutU64(span, Qcow2HeaderOffsets.L1TableOffset, L1TableOffset ?? (ulong)L1OffsetDefault);
        PutU64(span, Qcow2HeaderOffsets.RefcountTableOffset, RefcountTableOffset ?? (ulong)RefcountTableOffsetDefault);
        PutU32(span, Qcow2HeaderOffsets.RefcountTableClusters, RefcountTableClusters ?? 1);
        PutU32(span, Qcow2HeaderOffsets.NbSnapshots, NbSnapshots ?? 0);
        PutU64(span, Qcow2HeaderOffsets.SnapshotsOffset, SnapshotsOffset ?? 0);
        if (!v2)
        {
            PutU64(span, Qcow2HeaderOffsets.IncompatibleFeatures, IncompatibleFeatures);
            PutU64(span, Qcow2HeaderOffsets.CompatibleFeatures, CompatibleFeatures);
            PutU64(span, Qcow2HeaderOffsets.AutoclearFeatures, AutoclearFeatures);
            PutU32(span, Qcow2HeaderOffsets.RefcountOrder, RefcountOrder ?? 4);
            PutU32(span, Qcow2HeaderOffsets.HeaderLength, HeaderLength ?? (uint)headerLength);
        }

        // Refcount table → one refcount block → refcount 1 for every cluster of the file (16 bits each).
        PutU64(span, (int)RefcountTableOffsetDefault, RefcountTableEntry0 ?? (ulong)RefcountBlockOffset);
        long clusters = length / cs;
        if (clusters > cs / 2)
        {
            throw new InvalidOperationException("the layout outgrew one refcount block; use a bigger cluster or a smaller size");
        }

        for (int c = 0; c < clusters; c++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(span[(int)(RefcountBlockOffset + (c * 2))..], 1);
        }

        PutU64(span, (int)L1OffsetDefault, L1Entry0 ?? ((ulong)L2Offset | Copied));
        PutU64(span, (int)L2Offset, L2Entry0 ?? ((ulong)DataOffset | Copied));
        span.Slice((int)DataOffset, cs).Fill(DataPattern);

        foreach (var (offset, bytes) in _patches)
        {
            bytes.CopyTo(span[(int)offset..]);
        }

        return TruncateTo is { } cut ? image[..(int)cut] : image;
    }

    public string WriteTo(string path)
    {
        File.WriteAllBytes(path, Build());
        return path;
    }

    private static void PutU32(Span<byte> span, int offset, uint value) => BinaryPrimitives.WriteUInt32BigEndian(span[offset..], value);

    private static void PutU64(Span<byte> span, int offset, ulong value) => BinaryPrimitives.WriteUInt64BigEndian(span[offset..], value);
}
