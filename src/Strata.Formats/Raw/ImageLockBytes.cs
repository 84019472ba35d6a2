using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Strata.Block;

namespace Strata.Formats.Raw;

/// <summary>
/// QEMU's image locking on one open file (block/file-posix.c: raw_apply_lock_bytes,
/// raw_check_lock_bytes, raw_handle_perm_lock), so that Strata and QEMU see each other: for each
/// permission bit i (<see cref="BlockPermissions"/>), byte 100 + i is read-locked while the user holds
/// the permission and byte 200 + i while it forbids it to others. Nobody ever holds an exclusive
/// lock: a conflict is found by testing whether one would be refused on the other side's byte, byte
/// 200 + i for a permission taken, byte 100 + i for one forbidden (docs/locking.md).
/// </summary>
internal sealed class ImageLockBytes(SafeFileHandle handle, string path)
{
    /// <summary>RAW_LOCK_PERM_BASE.</summary>
    public const int HeldBase = 100;

    /// <summary>RAW_LOCK_SHARED_BASE.</summary>
    public const int ForbiddenBase = 200;

    private const int EAGAIN = 11;

    /// <summary>How long a conflict is looked at before it is reported (see <see cref="CheckConflictsPatiently"/>).</summary>
    private static readonly TimeSpan ConflictPatience = TimeSpan.FromMilliseconds(200);
    private const int PermissionCount = 4;

    // bdrv_perm_names, by bit: the words of QEMU's messages.
    private static readonly string[] Names = ["consistent read", "write", "write unchanged", "resize"];

    // Protects _held and _forbidden: the bytes this open file has locked now.
    private readonly Lock _gate = new();
    private BlockPermissions _held;
    private BlockPermissions _forbidden;

    public void Apply(NodePermissions permissions, PermissionCheck check)
    {
        var held = permissions.Held & BlockPermissions.All;
        var forbidden = permissions.ForceShare ? BlockPermissions.None : BlockPermissions.All & ~permissions.Shared;
        lock (_gate)
        {
            if ((held & ~_held) != 0 || (forbidden & ~_forbidden) != 0)
            {
                var (heldBefore, forbiddenBefore) = (_held, _forbidden);
                try
                {
                    // Lock first, then look (raw_handle_perm_lock, PREPARE): of two users doing this
                    // at the same moment, at least one sees the other.
                    LockBytes(held | _held, forbidden | _forbidden);
                    if (check == PermissionCheck.Conflicts)
                    {
                        CheckConflictsPatiently(held, forbidden);
                    }
                    else if (check == PermissionCheck.Probe && FirstConflict(held, forbidden) is { } conflict)
                    {
                        Throw(conflict.Offset, conflict.Result, conflict.What, nameHolder: false);
                    }
                }
                catch
                {
                    UnlockAllBut(heldBefore, forbiddenBefore);
                    throw;
                }
            }

            UnlockAllBut(held, forbidden);
        }
    }

    private void LockBytes(BlockPermissions held, BlockPermissions forbidden)
    {
        for (int i = 0; i < PermissionCount; i++)
        {
            var bit = (BlockPermissions)(1 << i);
            if ((held & bit) != 0 && (_held & bit) == 0)
            {
                LockByte(HeldBase + i);
                _held |= bit;
            }

            if ((forbidden & bit) != 0 && (_forbidden & bit) == 0)
            {
                LockByte(ForbiddenBase + i);
                _forbidden |= bit;
            }
        }
    }

    private void LockByte(int offset)
    {
        int errno = OfdLocks.LockShared(handle, offset);
        if (errno != 0)
        {
            throw new BlockException(BlockError.Io, $"Failed to lock byte {offset} of '{path}': {Marshal.GetPInvokeErrorMessage(errno)}");
        }
    }

    /// <summary>Unlocks what is locked beyond the given sets. Only unlocking: never fails (an error would leave a byte locked, which is safe).</summary>
    private void UnlockAllBut(BlockPermissions held, BlockPermissions forbidden)
    {
        for (int i = 0; i < PermissionCount; i++)
        {
            var bit = (BlockPermissions)(1 << i);
            if ((_held & bit) != 0 && (held & bit) == 0 && OfdLocks.Unlock(handle, HeldBase + i) == 0)
            {
                _held &= ~bit;
            }

            if ((_forbidden & bit) != 0 && (forbidden & bit) == 0 && OfdLocks.Unlock(handle, ForbiddenBase + i) == 0)
            {
                _forbidden &= ~bit;
            }
        }
    }

    /// <summary>
    /// Checks for conflicts, and looks again a few times before reporting one: a conflict can be our
    /// own for a moment. A process that another thread of ours is starting holds, between its fork
    /// and its exec, a copy of every descriptor we had open at the fork, and with it their open file
    /// descriptions and their locks; the exec closes them (they are close-on-exec). So an image this
    /// process has just closed can still look locked to its next open. A real holder is still there
    /// after <see cref="ConflictPatience"/>; this costs only a refusal its delay.
    /// </summary>
    private void CheckConflictsPatiently(BlockPermissions held, BlockPermissions forbidden)
    {
        long deadline = Environment.TickCount64 + (long)ConflictPatience.TotalMilliseconds;
        while (FirstConflict(held, forbidden) is { } conflict)
        {
            if (Environment.TickCount64 >= deadline)
            {
                Throw(conflict.Offset, conflict.Result, conflict.What, nameHolder: true);
            }

            Thread.Sleep(10);
        }
    }

    /// <summary>raw_check_lock_bytes: first what this user takes, then what it forbids, in bit order, with QEMU's words.</summary>
    private (int Offset, int Result, string What)? FirstConflict(BlockPermissions held, BlockPermissions forbidden)
    {
        for (int i = 0; i < PermissionCount; i++)
        {
            if ((held & (BlockPermissions)(1 << i)) != 0 && OfdLocks.IsHeldByOthers(handle, ForbiddenBase + i) is var result and not 0)
            {
                return (ForbiddenBase + i, result, $"Failed to get \"{Names[i]}\" lock");
            }
        }

        for (int i = 0; i < PermissionCount; i++)
        {
            if ((forbidden & (BlockPermissions)(1 << i)) != 0 && OfdLocks.IsHeldByOthers(handle, HeldBase + i) is var result and not 0)
            {
                return (HeldBase + i, result, $"Failed to get shared \"{Names[i]}\" lock");
            }
        }

        return null;
    }

    /// <summary>One line, QEMU's two sentences (its error and its hint), and, with <paramref name="nameHolder"/>, who holds the byte when /proc tells.</summary>
    private void Throw(int offset, int result, string what, bool nameHolder)
    {
        string reason = result < 0 && -result != EAGAIN ? $": {Marshal.GetPInvokeErrorMessage(-result)}" : "";
        string holder = nameHolder && result > 0 && LockHolder.Describe(handle, offset) is { } who ? $" ({who} holds it)" : "";
        throw new BlockException(BlockError.Locked, $"{what}{reason}. Is another process using the image [{path}]?{holder}");
    }
}
