using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Strata.Formats.Raw;

/// <summary>
/// One-byte open file description locks (fcntl(2), F_OFD_SETLK and F_OFD_GETLK, Linux 3.15+): they
/// belong to the open file, not to the process, so two opens of one image in one process see each
/// other as two processes do, and closing the file drops them. Never blocking.
/// </summary>
internal static partial class OfdLocks
{
    // asm-generic/fcntl.h: the same numbers on x86_64 and arm64.
    private const int GetLock = 36;
    private const int SetLock = 37;
    private const short ReadLock = 0;
    private const short WriteLock = 1;
    private const short NoLock = 2;

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(SafeFileHandle fd, int command, ref FcntlLock description);

    /// <summary>Takes a shared (read) lock on byte <paramref name="offset"/>; 0 or the errno.</summary>
    public static int LockShared(SafeFileHandle fd, long offset) => Set(fd, ReadLock, offset);

    /// <summary>Drops this open file's lock on byte <paramref name="offset"/>; 0 or the errno.</summary>
    public static int Unlock(SafeFileHandle fd, long offset) => Set(fd, NoLock, offset);

    /// <summary>
    /// Whether another open file holds a lock on byte <paramref name="offset"/>: the test for an
    /// exclusive lock there, which this open file's own locks never fail. 0 free, 1 held, or -errno.
    /// </summary>
    public static int IsHeldByOthers(SafeFileHandle fd, long offset)
    {
        var description = new FcntlLock { Type = WriteLock, Start = offset, Length = 1 };
        if (Fcntl(fd, GetLock, ref description) != 0)
        {
            return -Marshal.GetLastPInvokeError();
        }

        return description.Type == NoLock ? 0 : 1;
    }

    private static int Set(SafeFileHandle fd, short type, long offset)
    {
        var description = new FcntlLock { Type = type, Start = offset, Length = 1 };
        return Fcntl(fd, SetLock, ref description) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }
}
