using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Strata.Formats.Raw;

/// <summary>The few Linux calls .NET does not wrap: data/hole seeking, hole punching, fdatasync.</summary>
internal static partial class Posix
{
    public const int SeekData = 3;
    public const int SeekHole = 4;
    public const int FallocKeepSize = 0x01;
    public const int FallocPunchHole = 0x02;
    public const int FallocZeroRange = 0x10;
    public const int ENXIO = 6;
    public const int EOPNOTSUPP = 95;
    public const int ENOSPC = 28;

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(SafeFileHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(SafeFileHandle fd);

    /// <summary>lseek with SEEK_DATA or SEEK_HOLE; -1 with <paramref name="errno"/> set on failure.</summary>
    public static long Seek(SafeFileHandle fd, long offset, int whence, out int errno)
    {
        long r = lseek(fd, offset, whence);
        errno = r < 0 ? Marshal.GetLastPInvokeError() : 0;
        return r;
    }

    /// <summary>fallocate; returns 0 or the errno.</summary>
    public static int Fallocate(SafeFileHandle fd, int mode, long offset, long length)
        => fallocate(fd, mode, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError();

    public static void DataSync(SafeFileHandle fd)
    {
        if (fdatasync(fd) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new Block.BlockException(Block.BlockError.Io, $"fdatasync failed: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
    }
}
