namespace Strata.Block.Jobs;

/// <summary>A job's I/O failed (QEMU's BLOCK_JOB_ERROR): which side, and whether the job stopped or reports the error.</summary>
public sealed class JobIoErrorEventArgs(bool write, bool stopped, string message) : EventArgs
{
    /// <summary>True for a failed write, false for a failed read.</summary>
    public bool Write { get; } = write;

    /// <summary>True when the job paused itself (policy stop); false when it fails with the error.</summary>
    public bool Stopped { get; } = stopped;

    public string Message { get; } = message;
}
