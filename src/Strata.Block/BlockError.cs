namespace Strata.Block;

/// <summary>Why a block request failed; the protocols at the edges map it to their own codes (NBD errno, QMP class).</summary>
public enum BlockError
{
    Io,
    InvalidArgument,
    ReadOnly,
    NoSpace,
    NotSupported,

    /// <summary>The image's metadata is inconsistent; the image is refused or switched to read-only.</summary>
    Corrupt,

    /// <summary>The request is refused on principle, not for lack of access (a guest write that would change how its image is probed).</summary>
    PermissionDenied,

    /// <summary>Another user of the image holds what this one needs, or forbids it (docs/locking.md).</summary>
    Locked,

    /// <summary>
    /// A bounded wait ran out: a drain found requests still in flight at its deadline, so the graph
    /// change that wanted it is refused and the guest goes on.
    /// </summary>
    TimedOut,
}
