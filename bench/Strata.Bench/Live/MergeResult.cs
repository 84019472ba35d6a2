namespace Strata.Bench.Live;

/// <summary>
/// How one live merge went, timed from the block-commit command: when the job reported ready, when
/// it completed (null when it did not within the time allowed, or failed: see <see cref="Failure"/>).
/// </summary>
internal sealed record MergeResult(TimeSpan? Ready, TimeSpan? Completed, string? Failure)
{
    public bool Converged => Completed is not null;
}
