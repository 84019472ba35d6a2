namespace Strata.Block;

/// <summary>
/// What a drive does when a guest request fails in its layers (QEMU's BlockdevOnError, as -drive
/// werror= and rerror= take it; qapi/block-core.json). "ignore" is left out on purpose: it would
/// acknowledge a write that never reached the disk.
/// </summary>
public enum IoErrorPolicy
{
    /// <summary>The request fails with its error ("report").</summary>
    Report,

    /// <summary>The request is held unanswered and the drive stops until resumed, then it runs again ("stop").</summary>
    Stop,

    /// <summary>Stop when the disk is full, report any other error ("enospc").</summary>
    StopOnNoSpace,
}
