namespace Strata.TestKit;

/// <summary>Byte offsets of the qcow2 header fields (docs/interop/qcow2.txt, "Header"), all big-endian.</summary>
public static class Qcow2HeaderOffsets
{
    public const int Magic = 0;
    public const int Version = 4;
    public const int BackingFileOffset = 8;
    public const int BackingFileSize = 16;
    public const int ClusterBits = 20;
    public const int Size = 24;
    public const int CryptMethod = 32;
    public const int L1Size = 36;
    public const int L1TableOffset = 40;
    public const int RefcountTableOffset = 48;
    public const int RefcountTableClusters = 56;
    public const int NbSnapshots = 60;
    public const int SnapshotsOffset = 64;

    /// <summary>End of the version 2 header; the fields below exist from version 3.</summary>
    public const int V2HeaderLength = 72;
    public const int IncompatibleFeatures = 72;
    public const int CompatibleFeatures = 80;
    public const int AutoclearFeatures = 88;
    public const int RefcountOrder = 96;
    public const int HeaderLength = 100;
    public const int CompressionType = 104;
    public const int V3HeaderLength = 104;

    /// <summary>Header extension types (qcow2.txt, "Header extensions").</summary>
    public const uint ExtensionEnd = 0;
    public const uint ExtensionBackingFormat = 0xe2792aca;
    public const uint ExtensionFeatureNames = 0x6803f857;

    /// <summary>Reads a big-endian 32-bit header field of an image file.</summary>
    public static uint ReadUInt32(string path, int offset)
    {
        Span<byte> bytes = stackalloc byte[4];
        using var file = File.OpenHandle(path);
        RandomAccess.Read(file, bytes, offset);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    /// <summary>Reads a big-endian 64-bit header field (or table entry) of an image file.</summary>
    public static ulong ReadUInt64(string path, long offset)
    {
        Span<byte> bytes = stackalloc byte[8];
        using var file = File.OpenHandle(path);
        RandomAccess.Read(file, bytes, offset);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(bytes);
    }
}
