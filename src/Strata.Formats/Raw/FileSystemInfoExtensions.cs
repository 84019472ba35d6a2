using System.Runtime.InteropServices;

namespace Strata.Formats.Raw;

/// <summary>Allocated size of a file via stat(2), which .NET does not expose.</summary>
internal static partial class FileSystemInfoExtensions
{
    [StructLayout(LayoutKind.Sequential)]
    private struct StatX
    {
        public uint Mask;
        public uint BlkSize;
        public ulong Attributes;
        public uint Nlink;
        public uint Uid;
        public uint Gid;
        public ushort Mode;
        public ushort Spare0;
        public ulong Ino;
        public ulong Size;
        public ulong Blocks;

        // The rest of struct statx; the kernel writes up to 256 bytes.
        public unsafe fixed byte Rest[200];
    }

    private const int AtFdCwd = -100;
    private const uint StatxBlocks = 0x400;

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, out StatX buf);

    public static long GetAllocatedBytes(FileInfo file)
    {
        ArgumentNullException.ThrowIfNull(file);
        return Statx(AtFdCwd, file.FullName, 0, StatxBlocks, out var st) == 0 ? (long)st.Blocks * 512 : file.Length;
    }
}
