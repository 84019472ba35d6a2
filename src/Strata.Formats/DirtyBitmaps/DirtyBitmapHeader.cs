using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;
using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>
/// One copy of a dirty_bitmap file's header (docs/formats/dirty-bitmap.md, "Header"): parsing with
/// every field bounded before use, and serialization. The file holds two copies, in slots 0 and 1;
/// generation <c>g</c> is always written to slot <c>g % 2</c>, so an update never overwrites the
/// newest valid copy, and a torn update leaves the previous one to be read.
/// </summary>
internal sealed record DirtyBitmapHeader
{
    /// <summary>Each copy has a 4 KiB slot of its own, so no sector (512 B or 4 KiB) holds both.</summary>
    public const int SlotSize = 4096;

    /// <summary>The bytes version 1 first defined; the checksum covers the header size's bytes.</summary>
    public const int Length = 128;

    /// <summary>
    /// Where the image record starts: the lineage fields follow the first 128 bytes, in the room the
    /// header size leaves (docs/formats/dirty-bitmap.md, "Lineage"), so version 1 readers skip them.
    /// </summary>
    public const int ExtendedLength = 152;

    private const int LineageLength = 16;

    public const uint CurrentVersion = 1;

    /// <summary>The intent map and the bits start on 4 KiB boundaries, after both header slots.</summary>
    public const long AreaAlignment = 4096;

    public const long FirstAreaOffset = 2 * SlotSize;

    /// <summary>Disk sizes above this are refused (offsets stay far from overflow).</summary>
    public const long MaxDiskSize = 1L << 62;

    /// <summary>
    /// The largest bit area accepted, created or loaded (a 256 TiB disk at 64 KiB, 2 TiB at 512 B):
    /// QEMU's cap on a qcow2 bitmap (block/qcow2-bitmap.c, BME_MAX_PHYS_SIZE), so a hostile file of
    /// a few KiB on disk costs at most this much memory, once.
    /// </summary>
    public const long MaxBitsLength = 1L << 29;

    /// <summary>The largest intent map accepted (the writer keeps it at 4 KiB, <see cref="MaxIntentRegions"/> bits).</summary>
    public const long MaxIntentLength = 1L << 20;

    /// <summary>The writer's intent map has at most this many regions, so it fits one 4 KiB write.</summary>
    public const long MaxIntentRegions = 32768;

    /// <summary>The writer's smallest intent region: one durable update per 64 MiB touched since tracking began.</summary>
    public const long MinIntentRegion = 64L << 20;

    private const int ChecksumOffset = 112;
    private const int ChecksumLength = 16;
    private const int Sha256Length = 32;

    /// <summary>"\x89DBMP\r\n\x1a": a high byte and line endings, so a text-mode copy is caught (as PNG's magic does).</summary>
    public static ReadOnlySpan<byte> Magic => [0x89, (byte)'D', (byte)'B', (byte)'M', (byte)'P', 0x0d, 0x0a, 0x1a];

    public uint Version { get; init; } = CurrentVersion;

    public required ulong Generation { get; init; }

    public required long DiskSize { get; init; }

    public required int GranularityBits { get; init; }

    public required DirtyBitmapFileState State { get; init; }

    public required int IntentGranularityBits { get; init; }

    public required long IntentOffset { get; init; }

    public required long IntentLength { get; init; }

    public required long BitsOffset { get; init; }

    public required long BitsLength { get; init; }

    /// <summary>SHA-256 of the bit area's <see cref="BitsLength"/> bytes (QEMU's x-debug-block-dirty-bitmap-sha256); all zero while active.</summary>
    public ReadOnlyMemory<byte> BitsSha256 { get; init; } = new byte[Sha256Length];

    /// <summary>The tracking lineage's random id; all zero: none (a file from a version without lineages).</summary>
    public ReadOnlyMemory<byte> Lineage { get; init; } = new byte[LineageLength];

    public DirtyBitmapLineageStart LineageStart { get; init; }

    /// <summary>
    /// Consistent: the image files as they were when tracking stopped at a drive's close (null when
    /// it stopped elsewhere). Active: the files tracked (null when the drive could not vouch for them).
    /// </summary>
    public IReadOnlyList<ImageFileStamp>? Image { get; init; }

    public bool HasLineage => Lineage.Span.IndexOfAnyExcept((byte)0) >= 0;

    public string LineageId => Convert.ToHexStringLower(Lineage.Span);

    /// <summary>Why the lineage fields of a copy whose checksum is good are unusable, for <see cref="Validate"/>.</summary>
    private string? ExtensionProblem { get; init; }

    public long Granularity => 1L << GranularityBits;

    public long IntentGranularity => 1L << IntentGranularityBits;

    /// <summary>Where the file ends: the bit area rounded up to <see cref="AreaAlignment"/>.</summary>
    public long FileLength => BitsOffset + AlignUp(BitsLength);

    /// <summary>The slot this copy lives in.</summary>
    public int Slot => (int)(Generation % 2);

    /// <summary>The header of a new, empty, consistent file.</summary>
    /// <param name="intentGranularity">The intent region size; by default the larger of 64 MiB and what keeps the map at 32768 regions.</param>
    public static DirtyBitmapHeader ForNew(long diskSize, long granularity, long? intentGranularity = null)
    {
        DirtyBitmap.ValidateGranularity(granularity);
        if (diskSize < 0 || diskSize > MaxDiskSize)
        {
            throw BlockException.Invalid($"disk size {diskSize} must be from 0 to {MaxDiskSize}");
        }

        long region = intentGranularity ?? Math.Max(MinIntentRegion, (long)BitOperations.RoundUpToPowerOf2((ulong)Math.Max(1, CeilDiv(diskSize, MaxIntentRegions))));
        if (region < granularity || !BitOperations.IsPow2(region))
        {
            throw BlockException.Invalid($"intent region {region} must be a power of two of at least the granularity {granularity}");
        }

        long bitsLength = WordBytes(diskSize, granularity);
        if (bitsLength > MaxBitsLength)
        {
            throw BlockException.Invalid($"a bitmap of a {diskSize}-byte disk at {granularity}-byte granularity would need {bitsLength} bytes of bits (at most {MaxBitsLength})");
        }

        long intentLength = WordBytes(diskSize, region);
        long bitsOffset = FirstAreaOffset + AlignUp(intentLength);
        return new DirtyBitmapHeader
        {
            Generation = 1,
            DiskSize = diskSize,
            GranularityBits = BitOperations.Log2((ulong)granularity),
            State = DirtyBitmapFileState.Consistent,
            IntentGranularityBits = BitOperations.Log2((ulong)region),
            IntentOffset = FirstAreaOffset,
            IntentLength = intentLength,
            BitsOffset = bitsOffset,
            BitsLength = bitsLength,
            BitsSha256 = ZeroesSha256(bitsLength),
            Lineage = NewLineage(),
            LineageStart = DirtyBitmapLineageStart.Created,
        };
    }

    /// <summary>A new lineage id: 128 random bits, so no two files or two starts ever share one.</summary>
    public static byte[] NewLineage() => RandomNumberGenerator.GetBytes(LineageLength);

    /// <summary>Bytes of little-endian 64-bit words holding one bit per <paramref name="unit"/> bytes of a <paramref name="size"/>-byte disk.</summary>
    public static long WordBytes(long size, long unit) => CeilDiv(CeilDiv(size, unit), 64) * sizeof(ulong);

    /// <summary>
    /// Reads one copy from its slot: null with a reason when the magic or the checksum is wrong
    /// (a torn or never-written copy; the other may be good). Fields are not bounded here: see <see cref="Validate"/>.
    /// </summary>
    public static DirtyBitmapHeader? TryParse(ReadOnlySpan<byte> slot, out string reason)
    {
        if (slot.Length < Length || !slot.StartsWith(Magic))
        {
            reason = "bad magic";
            return null;
        }

        int headerSize = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(slot[12..]), int.MaxValue);
        if (headerSize < Length || headerSize > SlotSize || headerSize > slot.Length)
        {
            reason = $"header size {headerSize} is outside {Length}..{SlotSize}";
            return null;
        }

        if (!Checksum(slot[..headerSize]).SequenceEqual(slot.Slice(ChecksumOffset, ChecksumLength)))
        {
            reason = "header checksum mismatch";
            return null;
        }

        reason = "";
        var header = new DirtyBitmapHeader
        {
            Version = BinaryPrimitives.ReadUInt32LittleEndian(slot[8..]),
            Generation = BinaryPrimitives.ReadUInt64LittleEndian(slot[16..]),
            DiskSize = BinaryPrimitives.ReadInt64LittleEndian(slot[24..]),
            GranularityBits = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(slot[32..]), 64),
            State = (DirtyBitmapFileState)BinaryPrimitives.ReadUInt32LittleEndian(slot[36..]),
            IntentGranularityBits = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(slot[40..]), 64),
            IntentOffset = BinaryPrimitives.ReadInt64LittleEndian(slot[48..]),
            IntentLength = BinaryPrimitives.ReadInt64LittleEndian(slot[56..]),
            BitsOffset = BinaryPrimitives.ReadInt64LittleEndian(slot[64..]),
            BitsLength = BinaryPrimitives.ReadInt64LittleEndian(slot[72..]),
            BitsSha256 = slot.Slice(80, Sha256Length).ToArray(),
        };
        return headerSize < ExtendedLength ? header : header.WithExtension(slot[..headerSize]);
    }

    /// <summary>The lineage fields of a copy whose header size has room for them (the checksum already checked).</summary>
    private DirtyBitmapHeader WithExtension(ReadOnlySpan<byte> header)
    {
        uint recordLength = BinaryPrimitives.ReadUInt32LittleEndian(header[148..]);
        string problem = "";
        var stamps = recordLength == 0 ? null
            : recordLength > header.Length - ExtendedLength ? null
            : ImageFileStamp.Parse(header.Slice(ExtendedLength, (int)recordLength), out problem);
        if (recordLength > header.Length - ExtendedLength)
        {
            problem = $"the image record of {recordLength} bytes does not fit the {header.Length}-byte header";
        }

        return this with
        {
            Lineage = header.Slice(Length, LineageLength).ToArray(),
            LineageStart = (DirtyBitmapLineageStart)BinaryPrimitives.ReadUInt32LittleEndian(header[144..]),
            Image = stamps,
            ExtensionProblem = problem.Length > 0 ? problem : null,
        };
    }

    /// <summary>
    /// Bounds every field against the format and the file's length; throws a one-line
    /// <see cref="BlockException"/> (<see cref="BlockError.Corrupt"/>, or NotSupported for a newer version).
    /// </summary>
    public void Validate(long fileLength)
    {
        if (Version != CurrentVersion)
        {
            throw BlockException.NotSupported($"unsupported dirty_bitmap version {Version} (this program reads version {CurrentVersion})");
        }

        if (GranularityBits < BitOperations.Log2(DirtyBitmap.MinGranularity) || GranularityBits > BitOperations.Log2(DirtyBitmap.MaxGranularity))
        {
            throw BlockException.Corrupt($"granularity 2^{GranularityBits} is outside {DirtyBitmap.MinGranularity}..{DirtyBitmap.MaxGranularity} bytes");
        }

        if (ExtensionProblem is not null)
        {
            throw BlockException.Corrupt(ExtensionProblem);
        }

        if (State is not (DirtyBitmapFileState.Consistent or DirtyBitmapFileState.Frozen or DirtyBitmapFileState.Active))
        {
            throw BlockException.Corrupt($"unknown state {(uint)State}");
        }

        if (DiskSize < 0 || DiskSize > MaxDiskSize)
        {
            throw BlockException.Corrupt($"disk size {DiskSize} is outside 0..{MaxDiskSize}");
        }

        if (IntentGranularityBits < GranularityBits || IntentGranularityBits > 62)
        {
            throw BlockException.Corrupt($"intent region 2^{IntentGranularityBits} is smaller than the granularity or above 2^62");
        }

        CheckArea("bit area", BitsOffset, BitsLength, WordBytes(DiskSize, Granularity), MaxBitsLength, fileLength);
        CheckArea("intent map", IntentOffset, IntentLength, WordBytes(DiskSize, IntentGranularity), MaxIntentLength, fileLength);
        if (IntentOffset < BitsOffset + BitsLength && BitsOffset < IntentOffset + IntentLength)
        {
            throw BlockException.Corrupt($"the intent map at {IntentOffset} overlaps the bit area at {BitsOffset}");
        }
    }

    /// <summary>
    /// Writes this copy into a slot-sized buffer (zeroes past its header size), checksum included.
    /// An image record too large for the slot is left out: the next start then begins a new lineage.
    /// </summary>
    public void Write(Span<byte> slot)
    {
        slot.Clear();
        byte[] record = Image is { } stamps ? ImageFileStamp.Serialize(stamps) : [];
        if (ExtendedLength + record.Length > SlotSize)
        {
            record = [];
        }

        int headerSize = ExtendedLength + record.Length;
        Magic.CopyTo(slot);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[8..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[12..], (uint)headerSize);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[16..], Generation);
        BinaryPrimitives.WriteInt64LittleEndian(slot[24..], DiskSize);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[32..], (uint)GranularityBits);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[36..], (uint)State);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[40..], (uint)IntentGranularityBits);
        BinaryPrimitives.WriteInt64LittleEndian(slot[48..], IntentOffset);
        BinaryPrimitives.WriteInt64LittleEndian(slot[56..], IntentLength);
        BinaryPrimitives.WriteInt64LittleEndian(slot[64..], BitsOffset);
        BinaryPrimitives.WriteInt64LittleEndian(slot[72..], BitsLength);
        BitsSha256.Span.CopyTo(slot[80..]);
        Lineage.Span.CopyTo(slot[Length..]);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[144..], (uint)LineageStart);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[148..], (uint)record.Length);
        record.CopyTo(slot[ExtendedLength..]);
        Checksum(slot[..headerSize]).CopyTo(slot[ChecksumOffset..]);
    }

    /// <summary>SHA-256 of <paramref name="length"/> zero bytes, hashed in pieces (a new bitmap's bits).</summary>
    public static byte[] ZeroesSha256(long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var zeroes = new byte[(int)Math.Min(length, 1 << 20)];
        for (long done = 0; done < length; done += zeroes.Length)
        {
            hash.AppendData(zeroes, 0, (int)Math.Min(zeroes.Length, length - done));
        }

        return hash.GetHashAndReset();
    }

    public static long AlignUp(long value) => (value + AreaAlignment - 1) & ~(AreaAlignment - 1);

    /// <summary>The first 16 bytes of SHA-256 over the header with its checksum field taken as zero.</summary>
    private static byte[] Checksum(ReadOnlySpan<byte> header)
    {
        var copy = header.ToArray();
        copy.AsSpan(ChecksumOffset, ChecksumLength).Clear();
        return SHA256.HashData(copy)[..ChecksumLength];
    }

    private static void CheckArea(string name, long offset, long length, long expected, long max, long fileLength)
    {
        if (length != expected)
        {
            throw BlockException.Corrupt($"the {name} is {length} bytes, but the disk size and granularity need {expected}");
        }

        if (length > max)
        {
            throw BlockException.Corrupt($"the {name} of {length} bytes is larger than the {max} bytes allowed");
        }

        if (offset < FirstAreaOffset || offset % AreaAlignment != 0 || offset > MaxDiskSize)
        {
            throw BlockException.Corrupt($"the {name} offset {offset} is not a multiple of {AreaAlignment} after the two header slots");
        }

        if (offset + length > fileLength)
        {
            throw BlockException.Corrupt($"the {name} ends at {offset + length}, past the end of the {fileLength}-byte file (truncated?)");
        }
    }

    private static long CeilDiv(long a, long b) => a / b + (a % b == 0 ? 0 : 1);
}
