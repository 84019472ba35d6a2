using System.Runtime.InteropServices;

namespace Strata.Backup;

/// <summary>
/// fsync of a folder: a rename is durable only once the folder holding it is flushed (POSIX
/// rename(2) and fsync(2)), which .NET has no call for.
/// </summary>
internal static partial class FolderSync
{
    private const int OReadOnly = 0;
    private const int ODirectory = 0x10000;
    private const int OCloseOnExec = 0x80000;

    public static void Flush(string folder)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        int fd = Open(folder, OReadOnly | ODirectory | OCloseOnExec);
        if (fd < 0)
        {
            throw new IOException($"{folder}: cannot open the folder to flush it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"{folder}: fsync of the folder failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
