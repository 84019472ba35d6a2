using System.Buffers.Binary;

namespace Strata.Formats.Raw;

/// <summary>Allocated size of a file via statx(2), which .NET does not expose.</summary>
internal static class FileSystemInfoExtensions
{
    private const uint StatxBlocks = 0x400;

    // stx_blocks, in 512-byte units, in struct statx.
    private const int BlocksOffset = 48;

    public static long GetAllocatedBytes(FileInfo file)
    {
        ArgumentNullException.ThrowIfNull(file);
        Span<byte> stat = stackalloc byte[Posix.StatxSize];
        return Posix.Statx(file.FullName, StatxBlocks, stat) ? (long)BinaryPrimitives.ReadUInt64LittleEndian(stat[BlocksOffset..]) * 512 : file.Length;
    }
}
