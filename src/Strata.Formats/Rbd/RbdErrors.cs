using System.Runtime.InteropServices;
using Strata.Block;
using static Strata.Formats.Raw.Posix;

namespace Strata.Formats.Rbd;

/// <summary>librados' and librbd's negative errno returns as the engine's typed one-line errors.</summary>
internal static class RbdErrors
{
    // The errno values Posix does not name already (Linux's asm-generic/errno.h).
    private const int EBUSY = 16;
    private const int ETIMEDOUT = 110;
    private const int EDQUOT = 122;

    /// <summary>ENOENT: the image or pool is not there.</summary>
    public const int NotFound = -ENOENT;

    /// <summary>EEXIST: an image of that name is there already.</summary>
    public const int Exists = -EEXIST;

    /// <summary>EOPNOTSUPP.</summary>
    public const int Unsupported = -EOPNOTSUPP;

    /// <summary>
    /// The error for <paramref name="result"/> (negative errno) of <paramref name="what"/>, a phrase
    /// that names the operation and the image ("Could not open 'rbd:pool/img'").
    /// </summary>
    public static BlockException For(string what, long result)
    {
        int errno = (int)-result;
        string text = $"{what}: {Marshal.GetPInvokeErrorMessage(errno)}";
        var error = errno switch
        {
            ENOENT or EINVAL or EEXIST => BlockError.InvalidArgument,
            EROFS => BlockError.ReadOnly,
            ENOSPC or EDQUOT => BlockError.NoSpace,
            EOPNOTSUPP or ENOSYS => BlockError.NotSupported,
            EACCES or EPERM => BlockError.PermissionDenied,
            EBUSY => BlockError.Locked,
            ETIMEDOUT => BlockError.TimedOut,
            _ => BlockError.Io,
        };
        return new BlockException(error, text);
    }

    /// <summary>Throws <see cref="For"/> when <paramref name="result"/> is negative.</summary>
    public static void ThrowIfFailed(string what, long result)
    {
        if (result < 0)
        {
            throw For(what, result);
        }
    }

    /// <summary>The one line for a machine without Ceph's client libraries.</summary>
    public static BlockException LibraryMissing(Exception cause) => new(BlockError.NotSupported,
        "rbd: images need librbd, which is not installed (Debian package librbd1)", cause);
}
