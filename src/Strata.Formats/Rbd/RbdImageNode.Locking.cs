using System.Runtime.InteropServices;
using Strata.Block;

namespace Strata.Formats.Rbd;

/// <summary>
/// The image's exclusive lock as this node's write permission (DESIGN.md rule 6). librbd knows
/// one writer at a time, so only holding write is mapped; what a reader forbids others cannot be
/// expressed in RBD without becoming a writer, and is not enforced (docs/rbd.md).
/// </summary>
public sealed partial class RbdImageNode
{
    public void SetPermissions(NodePermissions permissions, PermissionCheck check)
    {
        bool writes = (permissions.Held & (BlockPermissions.Write | BlockPermissions.Resize)) != 0;
        lock (_lockGate)
        {
            if (!writes)
            {
                if (_locked)
                {
                    // Giving a permission up never fails: a failed release is the close's to retry.
                    _ = RbdNative.LockRelease(_image);
                    _locked = false;
                    _lockGivenUp = true;
                }

                return;
            }

            if (_locked)
            {
                return;
            }

            if (IsReadOnly)
            {
                // A read-only open holds no lock; asked to write, it looks whether a writer could,
                // for a reopen that will take the lock on its read-write open.
                if (check != PermissionCheck.Skip && Owner() is { } holder)
                {
                    throw Refused(holder);
                }

                return;
            }

            Acquire();
        }
    }

    /// <summary>Takes the exclusive lock on this read-write open (a new image's creation, a writer's open).</summary>
    internal void Acquire()
    {
        if ((Features & RbdNative.FeatureExclusiveLock) == 0)
        {
            throw BlockException.NotSupported(
                $"'{FileName}' cannot be opened for writing: it lacks the exclusive-lock feature that keeps a second writer out (rbd feature enable {Location.Pool}/{Location.Image} exclusive-lock)");
        }

        int acquired = RbdNative.LockAcquire(_image, RbdNative.LockModeExclusive);
        if (acquired < 0)
        {
            throw Refused(Owner() ?? $"another client ({Marshal.GetPInvokeErrorMessage(-acquired)})");
        }

        _locked = true;
        _lockGivenUp = false;
    }

    private BlockException Refused(string holder) => new(BlockError.Locked,
        $"Failed to get \"write\" lock on '{FileName}': its exclusive lock is held by {holder}; is another process using the image?");

    /// <summary>Who holds the exclusive lock, if anyone does ("client.4242" and its address).</summary>
    private unsafe string? Owner()
    {
        const int MaxOwners = 4;
        var owners = stackalloc IntPtr[MaxOwners];
        nuint count = MaxOwners;
        if (RbdNative.LockGetOwners(_image, out _, owners, ref count) < 0 || count == 0)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(owners[0]);
        }
        finally
        {
            RbdNative.LockGetOwnersCleanup(owners, count);
        }
    }
}
