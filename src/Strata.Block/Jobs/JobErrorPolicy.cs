namespace Strata.Block.Jobs;

/// <summary>What a job does when its own I/O fails (QEMU's BlockdevOnError, without "ignore").</summary>
public enum JobErrorPolicy
{
    /// <summary>Fail the job with the error (QEMU's default, "report").</summary>
    Report,

    /// <summary>Pause the job; job-resume retries the failed step ("stop").</summary>
    Stop,

    /// <summary>Stop when the disk is full, report any other error ("enospc").</summary>
    StopOnNoSpace,
}
