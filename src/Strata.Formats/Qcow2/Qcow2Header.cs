using System.Buffers.Binary;
using System.Text;
using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>
/// The qcow2 header (qcow2.txt, "Header") with its extensions and backing file name: parsing with
/// every field bounded, and serialization of the whole header cluster.
/// </summary>
internal sealed class Qcow2Header
{
    public const int V2Length = 72;
    public const int V3MinLength = 104;

    /// <summary>The length QEMU writes for version 3 (with the compression type byte and padding).</summary>
    public const int V3Length = 112;

    public const int MaxBackingFileSize = 1023;

    /// <summary>QEMU's limits (block/qcow2.h): QCOW_MAX_L1_SIZE and QCOW_MAX_REFTABLE_SIZE.</summary>
    public const int MaxL1Bytes = 32 * 1024 * 1024;
    public const int MaxRefcountTableBytes = 8 * 1024 * 1024;
    public const int MaxSnapshots = 65536;

    public const int OffsetSize = 24;
    public const int OffsetL1Size = 36;
    public const int OffsetRefcountTable = 48;
    public const int OffsetIncompatible = 72;

    public int Version { get; set; }

    public long BackingFileOffset { get; set; }

    public int BackingFileSize { get; set; }

    public int ClusterBits { get; set; }

    public long Size { get; set; }

    public uint CryptMethod { get; set; }

    public int L1Size { get; set; }

    public long L1TableOffset { get; set; }

    public long RefcountTableOffset { get; set; }

    public int RefcountTableClusters { get; set; }

    public int NbSnapshots { get; set; }

    public long SnapshotsOffset { get; set; }

    public ulong IncompatibleFeatures { get; set; }

    public ulong CompatibleFeatures { get; set; }

    public ulong AutoclearFeatures { get; set; }

    public int RefcountOrder { get; set; } = 4;

    public int HeaderLength { get; set; }

    /// <summary>0 = zlib (raw deflate), 1 = zstd.</summary>
    public byte CompressionType { get; set; }

    public string? BackingFile { get; set; }

    public string? BackingFormat { get; set; }

    /// <summary>
    /// The bitmaps extension when it is consistent (qcow2.txt, autoclear bit 0 set in a version 3
    /// header); null when absent or ignored.
    /// </summary>
    public Qcow2BitmapExtension? Bitmaps { get; set; }

    /// <summary>
    /// The image has a bitmaps extension that must be considered inconsistent (autoclear bit 0 clear,
    /// or a version 2 header): a program without bitmap support wrote the image. It is ignored, and
    /// dropped when the header is next written.
    /// </summary>
    public bool BitmapsIgnored { get; set; }

    /// <summary>Extensions this driver does not interpret, kept as they were (as QEMU does).</summary>
    public List<Qcow2HeaderExtension> OtherExtensions { get; } = [];

    /// <summary>Names from the image's feature-name table, keyed by (type, bit).</summary>
    public Dictionary<(byte Type, byte Bit), string> FeatureNames { get; } = [];

    public int ClusterSize => 1 << ClusterBits;

    public int RefcountBits => 1 << RefcountOrder;

    /// <summary>Parses and validates the header from the image's first bytes (up to one cluster).</summary>
    /// <param name="buffer">The file's first min(2 MiB, file size) bytes.</param>
    /// <param name="fileSize">The image file's length, to bound table offsets.</param>
    public static Qcow2Header Parse(ReadOnlySpan<byte> buffer, long fileSize)
    {
        if (buffer.Length < V2Length)
        {
            throw BlockException.Corrupt($"qcow2: the file is too short ({buffer.Length} bytes) for a header");
        }

        if (BinaryPrimitives.ReadInt32BigEndian(buffer) != Qcow2Node.Magic)
        {
            throw BlockException.Invalid("qcow2: bad magic (not a qcow2 image)");
        }

        var h = new Qcow2Header
        {
            Version = BinaryPrimitives.ReadInt32BigEndian(buffer[4..]),
        };
        if (h.Version is not (2 or 3))
        {
            throw BlockException.NotSupported($"qcow2: version {h.Version} is not supported (2 and 3 are)");
        }

        h.BackingFileOffset = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(buffer[8..]), long.MaxValue);
        h.BackingFileSize = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(buffer[16..]), int.MaxValue);
        uint clusterBits = BinaryPrimitives.ReadUInt32BigEndian(buffer[20..]);
        ulong size = BinaryPrimitives.ReadUInt64BigEndian(buffer[24..]);
        h.CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(buffer[32..]);
        uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(buffer[36..]);
        ulong l1Offset = BinaryPrimitives.ReadUInt64BigEndian(buffer[40..]);
        ulong refcountTableOffset = BinaryPrimitives.ReadUInt64BigEndian(buffer[48..]);
        uint refcountTableClusters = BinaryPrimitives.ReadUInt32BigEndian(buffer[56..]);
        uint nbSnapshots = BinaryPrimitives.ReadUInt32BigEndian(buffer[60..]);
        ulong snapshotsOffset = BinaryPrimitives.ReadUInt64BigEndian(buffer[64..]);

        if (clusterBits is < 9 or > 21)
        {
            throw BlockException.Corrupt($"qcow2: cluster_bits {clusterBits} is out of range (9..21)");
        }

        h.ClusterBits = (int)clusterBits;
        int clusterSize = h.ClusterSize;
        if (h.Version == 2)
        {
            h.HeaderLength = V2Length;
            h.RefcountOrder = 4;
        }
        else
        {
            if (buffer.Length < V3MinLength)
            {
                throw BlockException.Corrupt("qcow2: the file is too short for a version 3 header");
            }

            h.IncompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(buffer[72..]);
            h.CompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(buffer[80..]);
            h.AutoclearFeatures = BinaryPrimitives.ReadUInt64BigEndian(buffer[88..]);
            uint refcountOrder = BinaryPrimitives.ReadUInt32BigEndian(buffer[96..]);
            uint headerLength = BinaryPrimitives.ReadUInt32BigEndian(buffer[100..]);
            if (refcountOrder > 6)
            {
                throw BlockException.Corrupt($"qcow2: refcount_order {refcountOrder} is out of range (0..6)");
            }

            if (headerLength < V3MinLength || headerLength > clusterSize || headerLength > buffer.Length)
            {
                throw BlockException.Corrupt($"qcow2: header_length {headerLength} is out of range ({V3MinLength}..{clusterSize})");
            }

            if (headerLength % 8 != 0)
            {
                // qcow2.txt "Header": the header length must be a multiple of 8.
                throw BlockException.Corrupt($"qcow2: header_length {headerLength} is not a multiple of 8");
            }

            h.RefcountOrder = (int)refcountOrder;
            h.HeaderLength = (int)headerLength;
            if (headerLength > V3MinLength)
            {
                h.CompressionType = buffer[104];
            }
        }

        if (h.CryptMethod != 0)
        {
            throw BlockException.NotSupported($"qcow2: encrypted images are not supported (crypt_method {h.CryptMethod})");
        }

        // L1 size against the virtual size (qcow2.txt "Header": l1_size; QEMU: QCOW_MAX_L1_SIZE).
        long l2Coverage = (long)clusterSize * (clusterSize / 8);
        if (l1Size > MaxL1Bytes / 8)
        {
            throw BlockException.Corrupt($"qcow2: l1_size {l1Size} is too large (at most {MaxL1Bytes / 8} entries)");
        }

        if (size > (ulong)l2Coverage * (MaxL1Bytes / 8) || size > long.MaxValue / 2)
        {
            throw BlockException.Corrupt($"qcow2: size {size} is too large for cluster size {clusterSize}");
        }

        h.Size = (long)size;
        long needL1 = (h.Size + l2Coverage - 1) / l2Coverage;
        if (l1Size < needL1)
        {
            throw BlockException.Corrupt($"qcow2: l1_size {l1Size} is too small for size {size} (needs {needL1})");
        }

        h.L1Size = (int)l1Size;
        h.L1TableOffset = CheckTableOffset("L1 table", l1Offset, (long)l1Size * 8, clusterSize, fileSize, l1Size > 0);

        if (refcountTableClusters == 0 || refcountTableClusters > MaxRefcountTableBytes / clusterSize)
        {
            throw BlockException.Corrupt($"qcow2: refcount_table_clusters {refcountTableClusters} is out of range (1..{Math.Max(1, MaxRefcountTableBytes / clusterSize)})");
        }

        h.RefcountTableClusters = (int)refcountTableClusters;
        h.RefcountTableOffset = CheckTableOffset("refcount table", refcountTableOffset, (long)refcountTableClusters * clusterSize, clusterSize, fileSize, true);

        // The two tables every write relies on must not share bytes: writing one would corrupt the other.
        long l1End = h.L1TableOffset + ((long)h.L1Size * 8);
        long refcountEnd = h.RefcountTableOffset + ((long)h.RefcountTableClusters * clusterSize);
        if (h.L1Size > 0 && h.L1TableOffset < refcountEnd && h.RefcountTableOffset < l1End)
        {
            throw BlockException.Corrupt($"qcow2: the L1 table (0x{h.L1TableOffset:x}) overlaps the refcount table (0x{h.RefcountTableOffset:x})");
        }

        if (nbSnapshots > MaxSnapshots)
        {
            throw BlockException.Corrupt($"qcow2: nb_snapshots {nbSnapshots} is too large (at most {MaxSnapshots})");
        }

        h.NbSnapshots = (int)nbSnapshots;
        h.SnapshotsOffset = nbSnapshots == 0 ? (long)Math.Min(snapshotsOffset, long.MaxValue)
            : CheckTableOffset("snapshot table", snapshotsOffset, 0, clusterSize, fileSize, true);

        if (h.BackingFileOffset != 0)
        {
            if (h.BackingFileSize > MaxBackingFileSize)
            {
                throw BlockException.Corrupt($"qcow2: backing_file_size {h.BackingFileSize} is too large (at most {MaxBackingFileSize})");
            }

            if (h.BackingFileOffset < h.HeaderLength || h.BackingFileOffset > Math.Min(clusterSize, buffer.Length) - h.BackingFileSize)
            {
                throw BlockException.Corrupt($"qcow2: backing_file_offset 0x{h.BackingFileOffset:x} (size {h.BackingFileSize}) is outside the header cluster");
            }

            if (h.BackingFileSize > 0)
            {
                h.BackingFile = Encoding.UTF8.GetString(buffer.Slice((int)h.BackingFileOffset, h.BackingFileSize));
            }
        }

        h.ParseExtensions(buffer[..Math.Min(clusterSize, buffer.Length)], fileSize);

        h.ValidateFeatures();
        return h;
    }

    /// <summary>The name of an incompatible feature bit, from the image's own table when it has one.</summary>
    public string FeatureName(byte type, int bit)
        => FeatureNames.TryGetValue((type, (byte)bit), out var name) ? name
            : Qcow2Features.KnownNames.FirstOrDefault(f => f.Type == type && f.Bit == bit).Name ?? $"unknown feature bit {bit}";

    /// <summary>The whole header cluster: fields, extensions, end marker, backing file name.</summary>
    /// <exception cref="BlockException">The extensions and backing name do not fit in one cluster.</exception>
    public byte[] Serialize()
    {
        var buffer = new byte[ClusterSize];
        var span = buffer.AsSpan();
        int headerLength = Version >= 3 ? V3Length : V2Length;
        HeaderLength = headerLength;
        BinaryPrimitives.WriteInt32BigEndian(span, Qcow2Node.Magic);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], Version);
        BinaryPrimitives.WriteInt32BigEndian(span[20..], ClusterBits);
        BinaryPrimitives.WriteInt64BigEndian(span[24..], Size);
        BinaryPrimitives.WriteUInt32BigEndian(span[32..], CryptMethod);
        BinaryPrimitives.WriteInt32BigEndian(span[36..], L1Size);
        BinaryPrimitives.WriteInt64BigEndian(span[40..], L1TableOffset);
        BinaryPrimitives.WriteInt64BigEndian(span[48..], RefcountTableOffset);
        BinaryPrimitives.WriteInt32BigEndian(span[56..], RefcountTableClusters);
        BinaryPrimitives.WriteInt32BigEndian(span[60..], NbSnapshots);
        BinaryPrimitives.WriteInt64BigEndian(span[64..], SnapshotsOffset);
        int pos = headerLength;
        if (Version >= 3)
        {
            BinaryPrimitives.WriteUInt64BigEndian(span[72..], IncompatibleFeatures);
            BinaryPrimitives.WriteUInt64BigEndian(span[80..], CompatibleFeatures);
            BinaryPrimitives.WriteUInt64BigEndian(span[88..], AutoclearFeatures);
            BinaryPrimitives.WriteInt32BigEndian(span[96..], RefcountOrder);
            BinaryPrimitives.WriteInt32BigEndian(span[100..], headerLength);
            span[104] = CompressionType;
        }

        // QEMU's order (qcow2_update_header): backing format, feature names (version 3), bitmaps, others, end.
        if (BackingFormat is not null)
        {
            pos = WriteExtension(span, pos, Qcow2HeaderExtension.BackingFormat, Encoding.UTF8.GetBytes(BackingFormat));
        }

        // QEMU 7.2 leaves the feature-name table out of images with clusters below 8 KiB.
        if (Version >= 3 && ClusterSize >= 8192)
        {
            var names = new byte[Qcow2Features.KnownNames.Count * 48];
            for (int i = 0; i < Qcow2Features.KnownNames.Count; i++)
            {
                var (type, bit, name) = Qcow2Features.KnownNames[i];
                names[i * 48] = type;
                names[(i * 48) + 1] = bit;
                Encoding.ASCII.GetBytes(name, names.AsSpan((i * 48) + 2, 46));
            }

            pos = WriteExtension(span, pos, Qcow2HeaderExtension.FeatureNameTable, names);
        }

        if (Bitmaps is { } bitmaps)
        {
            pos = WriteExtension(span, pos, Qcow2HeaderExtension.Bitmaps, bitmaps.Serialize());
        }

        foreach (var extension in OtherExtensions)
        {
            pos = WriteExtension(span, pos, extension.Type, extension.Data);
        }

        pos = WriteExtension(span, pos, Qcow2HeaderExtension.EndOfExtensions, []);

        if (BackingFile is { } backing)
        {
            byte[] name = Encoding.UTF8.GetBytes(backing);
            if (name.Length > MaxBackingFileSize || pos + name.Length > ClusterSize)
            {
                throw BlockException.Invalid($"qcow2: backing file name '{backing}' does not fit in the header cluster");
            }

            name.CopyTo(span[pos..]);
            BinaryPrimitives.WriteInt64BigEndian(span[8..], pos);
            BinaryPrimitives.WriteInt32BigEndian(span[16..], name.Length);
            BackingFileOffset = pos;
            BackingFileSize = name.Length;
        }
        else
        {
            BackingFileOffset = 0;
            BackingFileSize = 0;
        }

        return buffer;
    }

    private static long CheckTableOffset(string what, ulong offset, long length, int clusterSize, long fileSize, bool used)
    {
        if (!used)
        {
            return (long)Math.Min(offset, long.MaxValue);
        }

        if ((offset & (ulong)(clusterSize - 1)) != 0)
        {
            throw BlockException.Corrupt($"qcow2: {what} offset 0x{offset:x} is not cluster-aligned");
        }

        if (offset == 0 || offset > (ulong)fileSize || (long)offset > fileSize - length)
        {
            throw BlockException.Corrupt($"qcow2: {what} offset 0x{offset:x} (length {length}) is outside the file ({fileSize} bytes)");
        }

        return (long)offset;
    }

    private static int WriteExtension(Span<byte> span, int pos, uint type, byte[] data)
    {
        int padded = (data.Length + 7) & ~7;
        if (pos + 8 + padded > span.Length)
        {
            throw BlockException.Invalid("qcow2: the header extensions do not fit in the header cluster");
        }

        BinaryPrimitives.WriteUInt32BigEndian(span[pos..], type);
        BinaryPrimitives.WriteInt32BigEndian(span[(pos + 4)..], data.Length);
        data.CopyTo(span[(pos + 8)..]);
        span.Slice(pos + 8 + data.Length, padded - data.Length).Clear();
        return pos + 8 + padded;
    }

    private void ParseExtensions(ReadOnlySpan<byte> cluster, long fileSize)
    {
        // Extensions run from header_length to the end marker, and never past the backing file name.
        int end = BackingFileOffset != 0 ? (int)BackingFileOffset : cluster.Length;
        int pos = HeaderLength;
        while (true)
        {
            if (pos + 8 > end)
            {
                if (pos >= end)
                {
                    return;
                }

                throw BlockException.Corrupt($"qcow2: header extension at 0x{pos:x} is truncated");
            }

            uint type = BinaryPrimitives.ReadUInt32BigEndian(cluster[pos..]);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(cluster[(pos + 4)..]);
            if (type == Qcow2HeaderExtension.EndOfExtensions)
            {
                return;
            }

            if (length > (uint)(end - pos - 8))
            {
                throw BlockException.Corrupt($"qcow2: header extension 0x{type:x8} length {length} exceeds the header cluster");
            }

            var data = cluster.Slice(pos + 8, (int)length);
            switch (type)
            {
                case Qcow2HeaderExtension.BackingFormat:
                    BackingFormat = Encoding.UTF8.GetString(data);
                    break;
                case Qcow2HeaderExtension.FeatureNameTable:
                    for (int i = 0; i + 48 <= data.Length; i += 48)
                    {
                        var raw = data.Slice(i + 2, 46);
                        int zero = raw.IndexOf((byte)0);
                        FeatureNames[(data[i], data[i + 1])] = Encoding.UTF8.GetString(zero < 0 ? raw : raw[..zero]);
                    }

                    break;
                case Qcow2HeaderExtension.Bitmaps:
                    // qcow2.txt, autoclear bit 0: without it the extension's data is inconsistent.
                    if (Version >= 3 && (AutoclearFeatures & Qcow2Features.AutoclearBitmaps) != 0)
                    {
                        Bitmaps = Qcow2BitmapExtension.Parse(data, ClusterSize, fileSize);
                    }
                    else
                    {
                        BitmapsIgnored = true;
                    }

                    break;
                default:
                    OtherExtensions.Add(new Qcow2HeaderExtension(type, data.ToArray()));
                    break;
            }

            pos += 8 + (int)((length + 7) & ~7u);
        }
    }

    private void ValidateFeatures()
    {
        ulong unknown = IncompatibleFeatures & ~(Qcow2Features.IncompatibleSupported | Qcow2Features.IncompatibleExternalDataFile | Qcow2Features.IncompatibleExtendedL2);
        if (unknown != 0)
        {
            var names = Enumerable.Range(0, 64).Where(b => (unknown & (1UL << b)) != 0).Select(b => FeatureName(Qcow2Features.TypeIncompatible, b));
            throw BlockException.NotSupported($"qcow2: unsupported incompatible feature(s): {string.Join(", ", names)}");
        }

        if ((IncompatibleFeatures & Qcow2Features.IncompatibleExternalDataFile) != 0)
        {
            throw BlockException.NotSupported("qcow2: images with an external data file are not supported");
        }

        if ((IncompatibleFeatures & Qcow2Features.IncompatibleExtendedL2) != 0)
        {
            throw BlockException.NotSupported("qcow2: images with extended L2 entries (subclusters) are not supported");
        }

        bool zstdBit = (IncompatibleFeatures & Qcow2Features.IncompatibleCompressionType) != 0;
        if (CompressionType > 1)
        {
            throw BlockException.NotSupported($"qcow2: compression_type {CompressionType} is not supported (0 zlib, 1 zstd)");
        }

        if (zstdBit != (CompressionType != 0))
        {
            throw BlockException.Corrupt($"qcow2: compression_type {CompressionType} disagrees with the compression type feature bit");
        }
    }
}
