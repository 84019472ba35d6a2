using System.Buffers.Binary;
using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>
/// The bitmaps header extension (qcow2.txt, "Bitmaps extension", type 0x23852875): how many
/// bitmaps the image stores and where their directory lies. Only meaningful while autoclear bit 0
/// ("bitmaps extension consistent") is set; the header parser drops it otherwise.
/// </summary>
internal sealed record Qcow2BitmapExtension(int Count, long DirectorySize, long DirectoryOffset)
{
    /// <summary>The extension's data length: nb_bitmaps, reserved, directory size, directory offset.</summary>
    public const int Length = 24;

    /// <summary>qcow2.txt: nb_bitmaps is at most 65535 (QEMU's QCOW2_MAX_BITMAPS).</summary>
    public const int MaxBitmaps = 65535;

    /// <summary>qcow2.txt: bitmap_directory_size is at most 64 MiB (QEMU: 1024 bytes per bitmap, 65535 of them).</summary>
    public const long MaxDirectorySize = 1024L * MaxBitmaps;

    /// <summary>Parses and bounds the extension's fields (the directory itself is read by the node).</summary>
    public static Qcow2BitmapExtension Parse(ReadOnlySpan<byte> data, int clusterSize, long fileSize)
    {
        if (data.Length != Length)
        {
            throw BlockException.Corrupt($"qcow2: bitmaps extension has length {data.Length} ({Length} expected)");
        }

        uint count = BinaryPrimitives.ReadUInt32BigEndian(data);
        uint reserved = BinaryPrimitives.ReadUInt32BigEndian(data[4..]);
        ulong size = BinaryPrimitives.ReadUInt64BigEndian(data[8..]);
        ulong offset = BinaryPrimitives.ReadUInt64BigEndian(data[16..]);
        if (reserved != 0)
        {
            throw BlockException.Corrupt("qcow2: bitmaps extension: reserved field is not zero");
        }

        if (count == 0 || count > MaxBitmaps)
        {
            throw BlockException.Corrupt($"qcow2: bitmaps extension: nb_bitmaps {count} is out of range (1..{MaxBitmaps})");
        }

        if (size == 0 || size > MaxDirectorySize)
        {
            throw BlockException.Corrupt($"qcow2: bitmaps extension: bitmap_directory_size {size} is out of range (1..{MaxDirectorySize})");
        }

        if (offset == 0 || (offset & (ulong)(clusterSize - 1)) != 0 || offset > (ulong)fileSize || (long)offset > fileSize - (long)size)
        {
            throw BlockException.Corrupt($"qcow2: bitmaps extension: bitmap_directory_offset 0x{offset:x} (size {size}) is not a cluster-aligned range inside the file");
        }

        return new Qcow2BitmapExtension((int)count, (long)size, (long)offset);
    }

    public byte[] Serialize()
    {
        var data = new byte[Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)Count);
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(8), (ulong)DirectorySize);
        BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(16), (ulong)DirectoryOffset);
        return data;
    }
}
