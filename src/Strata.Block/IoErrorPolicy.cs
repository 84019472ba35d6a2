namespace Strata.Block;

/// <summary>
/// What a failed request does (QEMU's BlockdevOnError, qapi/block-core.json): a guest request under a
/// drive's -drive werror= and rerror=, or a job's own I/O under on-error, on-source-error and
/// on-target-error. "ignore" is left out on purpose: it would acknowledge a write that never reached
/// the disk, or make a merge or a backup that skipped what it could not copy.
/// </summary>
public enum IoErrorPolicy
{
    /// <summary>The request fails with its error; for a job, the job fails ("report", QEMU's default).</summary>
    Report,

    /// <summary>
    /// The failed request waits, and runs again once resumed ("stop"): a guest request is held
    /// unanswered and the drive stops until cont; a job pauses until job-resume.
    /// </summary>
    Stop,

    /// <summary>Stop when the disk is full, report any other error ("enospc").</summary>
    StopOnNoSpace,
}
