namespace Strata.Block.Jobs;

/// <summary>The states of a job, as QEMU's qapi/job.json names them (query-jobs "status").</summary>
public enum JobStatus
{
    /// <summary>Made, not started.</summary>
    Created,

    /// <summary>Working towards completion.</summary>
    Running,

    /// <summary>Stopped at a pause point until resumed.</summary>
    Paused,

    /// <summary>Caught up: it stays in step with the guest and waits for <see cref="Job.Complete"/>.</summary>
    Ready,

    /// <summary>Finished its work; in QEMU it waits here for the other jobs of its transaction (a job here has none).</summary>
    Waiting,

    /// <summary>Finished its work, about to commit its result (the graph change).</summary>
    Pending,

    /// <summary>Failed or cancelled, undoing what it did.</summary>
    Aborting,

    /// <summary>Done, successfully or not; waits to be dismissed.</summary>
    Concluded,
}
