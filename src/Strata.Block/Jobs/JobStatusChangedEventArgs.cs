namespace Strata.Block.Jobs;

public sealed class JobStatusChangedEventArgs(JobStatus status) : EventArgs
{
    public JobStatus Status { get; } = status;
}
