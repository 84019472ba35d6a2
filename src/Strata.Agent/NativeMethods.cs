using System.Runtime.InteropServices;

namespace Strata.Agent;

/// <summary>The libc calls FIFREEZE and FITHAW need (linux/fs.h): both take an fd of a file in the file system.</summary>
internal static partial class NativeMethods
{
    /// <summary>_IOWR('X', 119, int): flush and block writers until FITHAW.</summary>
    public const uint FiFreeze = 0xC0045877;

    /// <summary>_IOWR('X', 120, int).</summary>
    public const uint FiThaw = 0xC0045878;

    public const int ORdOnly = 0;
    public const int ODirectory = 0x10000;
    public const int OCloexec = 0x80000;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, uint request, nint argument);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);
}
