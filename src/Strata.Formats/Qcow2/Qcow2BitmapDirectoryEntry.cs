using System.Buffers.Binary;
using System.Text;
using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>
/// One entry of the bitmap directory (qcow2.txt, "Bitmap directory"): where the bitmap's table is,
/// its flags, granularity and name. Entries are immutable; a change makes a new directory.
/// </summary>
internal sealed record Qcow2BitmapDirectoryEntry
{
    /// <summary>Flag bit 0: the bitmap was not saved correctly and may be inconsistent.</summary>
    public const uint FlagInUse = 1u << 0;

    /// <summary>Flag bit 1: the bitmap records every write to the image ("enabled").</summary>
    public const uint FlagAuto = 1u << 1;

    /// <summary>Flag bit 2: extra data this software does not know may be left as is while the bitmap is used.</summary>
    public const uint FlagExtraDataCompatible = 1u << 2;

    /// <summary>Bits 3-31 are reserved and must be zero.</summary>
    public const uint ReservedFlags = ~(FlagInUse | FlagAuto | FlagExtraDataCompatible);

    /// <summary>type 1: dirty tracking bitmap, the only type defined.</summary>
    public const byte DirtyTrackingType = 1;

    /// <summary>The fixed part of an entry, before extra data and name.</summary>
    public const int FixedLength = 24;

    /// <summary>qcow2.txt allows granularity_bits 0-63; like QEMU, 9 (512 B) to 31 (2 GiB) are accepted.</summary>
    public const int MinGranularityBits = 9;
    public const int MaxGranularityBits = 31;

    public const int MaxNameBytes = 1023;

    /// <summary>QEMU's limits on a bitmap's table (BME_MAX_TABLE_SIZE) and on its data (BME_MAX_PHYS_SIZE), bounding memory.</summary>
    public const int MaxTableEntries = 0x8000000;
    public const long MaxDataBytes = 0x20000000;

    public required long TableOffset { get; init; }

    public required int TableSize { get; init; }

    public required uint Flags { get; init; }

    public required int GranularityBits { get; init; }

    public required string Name { get; init; }

    /// <summary>Extra data, kept as it was (qcow2.txt: never interpreted here, never dropped).</summary>
    public byte[] ExtraData { get; init; } = [];

    public long Granularity => 1L << GranularityBits;

    public bool InUse => (Flags & FlagInUse) != 0;

    public bool Auto => (Flags & FlagAuto) != 0;

    /// <summary>qcow2.txt: unknown extra data without extra_data_compatible means the bitmap must not be used.</summary>
    public bool Usable => ExtraData.Length == 0 || (Flags & FlagExtraDataCompatible) != 0;

    /// <summary>Bytes of the whole entry, padded to a multiple of 8.</summary>
    public int EntryLength => (FixedLength + ExtraData.Length + Encoding.UTF8.GetByteCount(Name) + 7) & ~7;

    /// <summary>Bytes of bitmap data for a disk: one bit per granule, rounded up to whole bytes.</summary>
    public static long DataBytes(long diskSize, int granularityBits)
    {
        long granules = (diskSize + (1L << granularityBits) - 1) >> granularityBits;
        return (granules + 7) >> 3;
    }

    /// <summary>Entries a bitmap table needs for a disk: one per cluster of bitmap data.</summary>
    public static long TableEntries(long diskSize, int granularityBits, int clusterSize) => (DataBytes(diskSize, granularityBits) + clusterSize - 1) / clusterSize;

    /// <summary>
    /// Parses a whole directory of <paramref name="count"/> entries, bounding every field (QEMU's
    /// bitmap_list_load and check_dir_entry, plus unique names and table ranges inside the file).
    /// </summary>
    public static Qcow2BitmapDirectoryEntry[] ParseDirectory(ReadOnlySpan<byte> directory, int count, int clusterSize, long fileSize, long diskSize)
    {
        var entries = new List<Qcow2BitmapDirectoryEntry>(Math.Min(count, 1024));
        var names = new HashSet<string>(StringComparer.Ordinal);
        int pos = 0;
        while (pos < directory.Length)
        {
            if (entries.Count == count)
            {
                throw BlockException.Corrupt($"qcow2: bitmap directory holds more entries than nb_bitmaps ({count})");
            }

            if (directory.Length - pos < FixedLength)
            {
                throw BlockException.Corrupt($"qcow2: bitmap directory entry {entries.Count} is truncated");
            }

            var e = directory[pos..];
            ulong tableOffset = BinaryPrimitives.ReadUInt64BigEndian(e);
            uint tableSize = BinaryPrimitives.ReadUInt32BigEndian(e[8..]);
            uint flags = BinaryPrimitives.ReadUInt32BigEndian(e[12..]);
            byte type = e[16];
            int granularityBits = e[17];
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(e[18..]);
            uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(e[20..]);
            long length = (FixedLength + (long)extraSize + nameSize + 7) & ~7L;
            if (length > directory.Length - pos)
            {
                throw BlockException.Corrupt($"qcow2: bitmap directory entry {entries.Count} runs past the end of the directory");
            }

            string what = $"qcow2: bitmap directory entry {entries.Count}";
            if (nameSize == 0 || nameSize > MaxNameBytes)
            {
                throw BlockException.Corrupt($"{what}: name_size {nameSize} is out of range (1..{MaxNameBytes})");
            }

            string name;
            try
            {
                name = new UTF8Encoding(false, true).GetString(e.Slice(FixedLength + (int)extraSize, nameSize));
            }
            catch (DecoderFallbackException)
            {
                throw BlockException.Corrupt($"{what}: the name is not valid UTF-8");
            }

            what = $"qcow2: bitmap '{name}'";
            if ((flags & ReservedFlags) != 0)
            {
                throw BlockException.Corrupt($"{what}: reserved flags 0x{flags & ReservedFlags:x} are set");
            }

            if (type != DirtyTrackingType)
            {
                throw BlockException.Corrupt($"{what}: type {type} is not a dirty tracking bitmap (1)");
            }

            if (granularityBits is < MinGranularityBits or > MaxGranularityBits)
            {
                throw BlockException.Corrupt($"{what}: granularity_bits {granularityBits} is out of range ({MinGranularityBits}..{MaxGranularityBits})");
            }

            if (tableSize == 0 || tableSize > MaxTableEntries || (long)tableSize * clusterSize > MaxDataBytes)
            {
                throw BlockException.Corrupt($"{what}: bitmap_table_size {tableSize} is out of range");
            }

            if (tableOffset == 0 || (tableOffset & (ulong)(clusterSize - 1)) != 0 || tableOffset > (ulong)fileSize || (long)tableOffset > fileSize - (tableSize * 8L))
            {
                throw BlockException.Corrupt($"{what}: bitmap_table_offset 0x{tableOffset:x} ({tableSize} entries) is not a cluster-aligned range inside the file");
            }

            // A bitmap saved correctly covers the whole disk (one in use may be stale after a resize).
            if ((flags & FlagInUse) == 0 && tableSize < TableEntries(diskSize, granularityBits, clusterSize))
            {
                throw BlockException.Corrupt($"{what}: its table of {tableSize} entries is too small for the disk");
            }

            var padding = e[(FixedLength + (int)extraSize + nameSize)..(int)length];
            if (padding.ContainsAnyExcept((byte)0))
            {
                throw BlockException.Corrupt($"{what}: the entry's padding is not zero");
            }

            if (!names.Add(name))
            {
                throw BlockException.Corrupt($"{what} appears twice in the bitmap directory");
            }

            entries.Add(new Qcow2BitmapDirectoryEntry
            {
                TableOffset = (long)tableOffset,
                TableSize = (int)tableSize,
                Flags = flags,
                GranularityBits = granularityBits,
                Name = name,
                ExtraData = e.Slice(FixedLength, (int)extraSize).ToArray(),
            });
            pos += (int)length;
        }

        if (entries.Count != count)
        {
            throw BlockException.Corrupt($"qcow2: bitmap directory holds {entries.Count} entries, nb_bitmaps says {count}");
        }

        return [.. entries];
    }

    /// <summary>The directory's bytes for <paramref name="entries"/>, each padded to 8 bytes.</summary>
    public static byte[] SerializeDirectory(IReadOnlyList<Qcow2BitmapDirectoryEntry> entries)
    {
        var bytes = new byte[entries.Sum(e => (long)e.EntryLength)];
        int pos = 0;
        foreach (var entry in entries)
        {
            var span = bytes.AsSpan(pos);
            byte[] name = Encoding.UTF8.GetBytes(entry.Name);
            BinaryPrimitives.WriteUInt64BigEndian(span, (ulong)entry.TableOffset);
            BinaryPrimitives.WriteUInt32BigEndian(span[8..], (uint)entry.TableSize);
            BinaryPrimitives.WriteUInt32BigEndian(span[12..], entry.Flags);
            span[16] = DirtyTrackingType;
            span[17] = (byte)entry.GranularityBits;
            BinaryPrimitives.WriteUInt16BigEndian(span[18..], (ushort)name.Length);
            BinaryPrimitives.WriteUInt32BigEndian(span[20..], (uint)entry.ExtraData.Length);
            entry.ExtraData.CopyTo(span[FixedLength..]);
            name.CopyTo(span[(FixedLength + entry.ExtraData.Length)..]);
            pos += entry.EntryLength;
        }

        return bytes;
    }
}
