namespace Strata.Fuzz;

/// <summary>A run did not finish in time: a loop that never ends or a wait that is never answered.</summary>
/// <remarks>
/// When the run stopped once cancelled, the inner exception's stack says where it was. When it did
/// not (<see cref="Unwound"/> false), its thread is still busy: the process is no longer trustworthy
/// and should end (under afl the fork server then starts a fresh one and counts the input as a crash).
/// </remarks>
internal sealed class FuzzHang : Exception
{
    public FuzzHang()
    {
    }

    public FuzzHang(string message)
        : base(message)
    {
    }

    public FuzzHang(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>True when the run ended after it was cancelled: nothing of it is left running.</summary>
    public bool Unwound { get; init; }

    /// <summary>The step the target entered last (see <see cref="FuzzProgress.Step"/>).</summary>
    public string Step { get; init; } = "";
}
