namespace Strata.Fuzz;

/// <summary>What one run is doing: the step it is in, and whether it must stop.</summary>
/// <remarks>
/// The step names a hang that never unwinds: its thread cannot be asked where it is, but the target
/// said which step it entered last. Written by the run, read by <see cref="FuzzRun"/> once it overran.
/// </remarks>
internal sealed class FuzzProgress(CancellationToken cancellation)
{
    private volatile string _step = "start";

    /// <summary>Cancelled when the run overran its bounds: a loop that does I/O unwinds at its next call.</summary>
    public CancellationToken Cancellation { get; } = cancellation;

    public string Step
    {
        get => _step;
        set => _step = value;
    }
}
