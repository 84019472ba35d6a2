using System.Runtime.InteropServices;

namespace Strata.Formats.Rbd;

/// <summary>
/// The part of librados' and librbd's C APIs the rbd driver calls (rados/librados.h,
/// rbd/librbd.h). Handles are opaque pointers; every call returns 0 or a negative errno unless noted.
/// The libraries are loaded on the first call (Debian: librados2, librbd1), so a Strata without them
/// runs everything but rbd: images; <see cref="RbdErrors.LibraryMissing"/> words that case.
/// </summary>
internal static partial class RbdNative
{
    private const string Rados = "librados.so.2";
    private const string Rbd = "librbd.so.1";

    /// <summary>rbd_lock_mode_t.</summary>
    public const int LockModeExclusive = 0;

    /// <summary>RBD_WRITE_ZEROES_FLAG_THICK_PROVISION: the zeroed range stays allocated.</summary>
    public const int WriteZeroesThickProvision = 1;

    /// <summary>RBD_FEATURE_EXCLUSIVE_LOCK (rbd/features.h).</summary>
    public const ulong FeatureExclusiveLock = 1UL << 2;

    /// <summary>RBD_FEATURE_FAST_DIFF.</summary>
    public const ulong FeatureFastDiff = 1UL << 4;

    /// <summary>RBD_FLAG_FAST_DIFF_INVALID (rbd_get_flags).</summary>
    public const ulong FlagFastDiffInvalid = 1UL << 1;

    [LibraryImport(Rados, EntryPoint = "rados_create2", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RadosCreate2(out IntPtr cluster, string clusterName, string userName, ulong flags);

    [LibraryImport(Rados, EntryPoint = "rados_conf_read_file", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RadosConfReadFile(IntPtr cluster, string? path);

    [LibraryImport(Rados, EntryPoint = "rados_conf_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RadosConfSet(IntPtr cluster, string option, string value);

    [LibraryImport(Rados, EntryPoint = "rados_conf_get", StringMarshalling = StringMarshalling.Utf8)]
    public static unsafe partial int RadosConfGet(IntPtr cluster, string option, byte* buffer, nuint length);

    [LibraryImport(Rados, EntryPoint = "rados_connect")]
    public static partial int RadosConnect(IntPtr cluster);

    [LibraryImport(Rados, EntryPoint = "rados_shutdown")]
    public static partial void RadosShutdown(IntPtr cluster);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RadosIoctxCreate(IntPtr cluster, string poolName, out IntPtr ioctx);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_set_namespace", StringMarshalling = StringMarshalling.Utf8)]
    public static partial void RadosIoctxSetNamespace(IntPtr ioctx, string? name);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_destroy")]
    public static partial void RadosIoctxDestroy(IntPtr ioctx);

    [LibraryImport(Rbd, EntryPoint = "rbd_open", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(IntPtr ioctx, string name, out IntPtr image, string? snapName);

    [LibraryImport(Rbd, EntryPoint = "rbd_open_read_only", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int OpenReadOnly(IntPtr ioctx, string name, out IntPtr image, string? snapName);

    [LibraryImport(Rbd, EntryPoint = "rbd_close")]
    public static partial int Close(IntPtr image);

    [LibraryImport(Rbd, EntryPoint = "rbd_image_options_create")]
    public static partial void ImageOptionsCreate(out IntPtr options);

    [LibraryImport(Rbd, EntryPoint = "rbd_image_options_destroy")]
    public static partial void ImageOptionsDestroy(IntPtr options);

    [LibraryImport(Rbd, EntryPoint = "rbd_create4", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Create4(IntPtr ioctx, string name, ulong size, IntPtr options);

    [LibraryImport(Rbd, EntryPoint = "rbd_remove", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Remove(IntPtr ioctx, string name);

    [LibraryImport(Rbd, EntryPoint = "rbd_get_size")]
    public static partial int GetSize(IntPtr image, out ulong size);

    [LibraryImport(Rbd, EntryPoint = "rbd_get_features")]
    public static partial int GetFeatures(IntPtr image, out ulong features);

    [LibraryImport(Rbd, EntryPoint = "rbd_get_flags")]
    public static partial int GetFlags(IntPtr image, out ulong flags);

    [LibraryImport(Rbd, EntryPoint = "rbd_resize")]
    public static partial int Resize(IntPtr image, ulong size);

    [LibraryImport(Rbd, EntryPoint = "rbd_lock_acquire")]
    public static partial int LockAcquire(IntPtr image, int mode);

    [LibraryImport(Rbd, EntryPoint = "rbd_lock_release")]
    public static partial int LockRelease(IntPtr image);

    [LibraryImport(Rbd, EntryPoint = "rbd_is_exclusive_lock_owner")]
    public static partial int IsExclusiveLockOwner(IntPtr image, out int isOwner);

    [LibraryImport(Rbd, EntryPoint = "rbd_lock_get_owners")]
    public static unsafe partial int LockGetOwners(IntPtr image, out int mode, IntPtr* owners, ref nuint maxOwners);

    [LibraryImport(Rbd, EntryPoint = "rbd_lock_get_owners_cleanup")]
    public static unsafe partial void LockGetOwnersCleanup(IntPtr* owners, nuint count);

    /// <summary>rbd_diff_iterate2; <paramref name="callback"/> is <c>int (*)(uint64_t, size_t, int, void *)</c>.</summary>
    [LibraryImport(Rbd, EntryPoint = "rbd_diff_iterate2", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int DiffIterate2(IntPtr image, string? fromSnap, ulong offset, ulong length,
        byte includeParent, byte wholeObject, IntPtr callback, IntPtr argument);

    /// <summary>rbd_aio_create_completion; <paramref name="callback"/> is <c>void (*)(rbd_completion_t, void *)</c>.</summary>
    [LibraryImport(Rbd, EntryPoint = "rbd_aio_create_completion")]
    public static partial int AioCreateCompletion(IntPtr argument, IntPtr callback, out IntPtr completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_get_return_value")]
    public static partial nint AioGetReturnValue(IntPtr completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_release")]
    public static partial void AioRelease(IntPtr completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_read")]
    public static unsafe partial int AioRead(IntPtr image, ulong offset, nuint length, byte* buffer, IntPtr completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_write")]
    public static unsafe partial int AioWrite(IntPtr image, ulong offset, nuint length, byte* buffer, IntPtr completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_discard")]
    public static partial int AioDiscard(IntPtr image, ulong offset, ulong length, IntPtr completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_write_zeroes")]
    public static partial int AioWriteZeroes(IntPtr image, ulong offset, nuint length, IntPtr completion, int zeroFlags, int opFlags);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_flush")]
    public static partial int AioFlush(IntPtr image, IntPtr completion);
}
