using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Strata.Formats.Raw;

/// <summary>
/// The few Linux calls .NET does not wrap: open(2) with exactly the flags we choose, renameat2,
/// data/hole seeking, hole punching, fdatasync, the logical block size.
/// </summary>
internal static partial class Posix
{
    public const int SeekData = 3;
    public const int SeekHole = 4;
    public const int FallocKeepSize = 0x01;
    public const int FallocPunchHole = 0x02;
    public const int FallocZeroRange = 0x10;

    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int ENXIO = 6;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int ENOTDIR = 20;
    public const int EISDIR = 21;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;
    public const int EROFS = 30;
    public const int ENOSYS = 38;
    public const int ELOOP = 40;
    public const int EOPNOTSUPP = 95;

    // open(2) flags that are the same on every Linux ABI .NET runs on (asm-generic/fcntl.h).
    public const int OReadOnly = 0;
    public const int OWriteOnly = 1;
    public const int OReadWrite = 2;
    public const int OCreate = 0x40;
    public const int OExclusive = 0x80;
    public const int OCloseOnExec = 0x80000;

    /// <summary>rw-r--r--, what qemu-img gives the images it creates (before the umask).</summary>
    public const int CreateMode = 0x1A4;

    private const int AtFdCwd = -100;
    private const uint NoReplace = 1;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1;
    private const uint BlockSectorSizeGet = 0x1268;

    // The file type bits of st_mode (inode(7)).
    private const int TypeMask = 0xF000;
    private const int TypeRegular = 0x8000;
    private const int TypeDirectory = 0x4000;

    /// <summary>O_DIRECT, whose value depends on the ABI: arm and arm64 have their own, powerpc another.</summary>
    public static int ODirect { get; } = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.Arm64 or Architecture.Arm => 0x10000,
        Architecture.Ppc64le => 0x20000,
        _ => 0x4000,
    };

    /// <summary>O_NOFOLLOW, also ABI-dependent: open fails with ELOOP when the last component is a symbolic link.</summary>
    public static int ONoFollow { get; } = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.Arm64 or Architecture.Arm or Architecture.Ppc64le => 0x8000,
        _ => 0x20000,
    };

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenNative(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int oldDirectory, string oldPath, int newDirectory, string newPath, uint flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int link(string oldPath, string newPath);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int unlink(string path);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(SafeFileHandle fd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatxAt(int directory, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int ioctl(SafeFileHandle fd, nuint request, int* value);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint pread(SafeFileHandle fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(SafeFileHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(SafeFileHandle fd);

    /// <summary>
    /// open(2) with exactly <paramref name="flags"/> (O_CLOEXEC is always added); the handle owns the
    /// descriptor. Null with <paramref name="errno"/> set on failure.
    /// </summary>
    public static SafeFileHandle? Open(string path, int flags, out int errno)
    {
        int fd = OpenNative(path, flags | OCloseOnExec, CreateMode);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }

        errno = 0;
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Renames, failing with EEXIST rather than replace anything at <paramref name="to"/>; returns 0 or the errno.</summary>
    public static int RenameNoReplace(string from, string to)
    {
        if (renameat2(AtFdCwd, from, AtFdCwd, to, NoReplace) == 0)
        {
            return 0;
        }

        int errno = Marshal.GetLastPInvokeError();
        if (errno is not (EINVAL or ENOSYS))
        {
            return errno;
        }

        // A file system without RENAME_NOREPLACE: link(2) never replaces either, then the old name goes.
        if (link(from, to) != 0)
        {
            return Marshal.GetLastPInvokeError();
        }

        return unlink(from) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// Whether an open descriptor is a regular file or a directory, from statx(2) (whose layout, unlike
    /// stat's, is the same on every ABI); neither when statx fails.
    /// </summary>
    public static unsafe (bool Regular, bool Directory) FileType(SafeFileHandle fd)
    {
        // struct statx is 256 bytes; stx_mode is the 16-bit field at offset 28.
        byte* buffer = stackalloc byte[256];
        if (statx(fd, "", AtEmptyPath, StatxType, buffer) != 0)
        {
            return (false, false);
        }

        int type = *(ushort*)(buffer + 28) & TypeMask;
        return (type == TypeRegular, type == TypeDirectory);
    }

    /// <summary>Bytes of struct statx (statx(2)), whose layout, unlike stat's, is the same on every ABI.</summary>
    public const int StatxSize = 256;

    /// <summary>
    /// statx(2) of <paramref name="path"/> (relative to the current folder, symbolic links followed)
    /// into <paramref name="buffer"/>, of at least <see cref="StatxSize"/> bytes, asking for the fields
    /// of <paramref name="mask"/>; false when the call fails.
    /// </summary>
    public static unsafe bool Statx(string path, uint mask, Span<byte> buffer)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buffer.Length, StatxSize);
        fixed (byte* at = buffer)
        {
            return StatxAt(AtFdCwd, path, 0, mask, at) == 0;
        }
    }

    /// <summary>The logical block size of a block device (BLKSSZGET), or 0 when it is not one.</summary>
    public static unsafe int LogicalBlockSize(SafeFileHandle fd)
    {
        int size = 0;
        return ioctl(fd, BlockSectorSizeGet, &size) == 0 ? size : 0;
    }

    /// <summary>One pread(2) into <paramref name="buffer"/> at <paramref name="offset"/>; returns 0 or the errno (a short read is a success).</summary>
    public static unsafe int ReadOnce(SafeFileHandle fd, Span<byte> buffer, long offset)
    {
        fixed (byte* pointer = buffer)
        {
            return pread(fd, pointer, (nuint)buffer.Length, offset) >= 0 ? 0 : Marshal.GetLastPInvokeError();
        }
    }

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
