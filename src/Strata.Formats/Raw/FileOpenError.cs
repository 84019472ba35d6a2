using System.Runtime.InteropServices;
using Strata.Block;

namespace Strata.Formats.Raw;

/// <summary>The one-line error for an open(2) or a creation that failed, by its errno and the flags it was given.</summary>
internal static class FileOpenError
{
    public static BlockException For(string path, int flags, int errno)
    {
        bool creating = (flags & Posix.OCreate) != 0;
        string what = creating ? "create" : "open";

        // O_NOFOLLOW refuses a link with ELOOP; O_EXCL with EEXIST, whatever the link points to.
        if (creating && (errno == Posix.ELOOP || (errno == Posix.EEXIST && new FileInfo(path).LinkTarget is not null)))
        {
            return BlockException.Invalid($"Could not create '{path}': it is a symbolic link, which is never followed");
        }

        return errno switch
        {
            Posix.EEXIST => BlockException.Invalid($"Could not create '{path}': it already exists"),
            Posix.EINVAL when (flags & Posix.ODirect) != 0 =>
                BlockException.NotSupported($"cache=none: the file system of '{path}' does not support O_DIRECT (use cache=writeback)"),
            Posix.ENOENT or Posix.ENOTDIR => BlockException.Invalid($"Could not {what} '{path}': No such file or directory"),
            Posix.EISDIR => BlockException.Invalid($"'{path}' is a directory"),
            Posix.EACCES or Posix.EPERM or Posix.EROFS => new BlockException(BlockError.ReadOnly, $"Could not {what} '{path}': Permission denied"),
            _ => new BlockException(BlockError.Io, $"Could not {what} '{path}': {Marshal.GetPInvokeErrorMessage(errno)}"),
        };
    }
}
