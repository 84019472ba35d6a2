using System.Text;
using Strata.Block;

namespace Strata.Formats.Raw;

/// <summary>
/// Small files that must be new (a pid file's temporary, say) and renames that must not replace:
/// nothing planted at the name, a symbolic link above all, is ever followed or overwritten.
/// </summary>
public static class NewFile
{
    /// <summary>
    /// Creates <paramref name="path"/> holding <paramref name="text"/> (UTF-8) with
    /// O_CREAT|O_EXCL|O_NOFOLLOW: fails if anything has that name. On failure nothing of ours is left.
    /// </summary>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(text);
        int flags = Posix.OWriteOnly | Posix.OCreate | Posix.OExclusive | Posix.ONoFollow;
        var handle = Posix.Open(path, flags, out int errno) ?? throw FileOpenError.For(path, flags, errno);
        try
        {
            using (handle)
            {
                RandomAccess.Write(handle, Encoding.UTF8.GetBytes(text), 0);
            }
        }
        catch (IOException e)
        {
            File.Delete(path);
            throw new BlockException(BlockError.Io, $"Could not write '{path}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Renames <paramref name="from"/> to <paramref name="to"/>, failing rather than replace anything
    /// that already has that name (renameat2 RENAME_NOREPLACE; link and unlink where the file system
    /// lacks it). A plain rename would silently replace a file or a link planted there.
    /// </summary>
    public static void Move(string from, string to)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        int errno = Posix.RenameNoReplace(from, to);
        if (errno != 0)
        {
            throw FileOpenError.For(to, Posix.OCreate | Posix.OExclusive, errno);
        }
    }
}
