namespace Strata.Fuzz;

/// <summary>
/// One parser under fuzzing: takes one input and drives it through the code as a hostile peer would.
/// </summary>
/// <remarks>
/// Contract: the documented ways of refusing bad input (a <see cref="Block.BlockException"/> for an
/// image, a disconnect for an NBD client, an error reply for a QMP client) are caught inside and end
/// the run normally. Everything else escapes: any other exception, or a <see cref="FuzzFailure"/> for
/// an invariant the target checks itself. Each run builds its own state, so runs never influence each
/// other (afl needs an input to behave the same every time it is run).
/// </remarks>
internal interface IFuzzTarget
{
    /// <summary>The name on the command line and the folder of its corpus: qcow2, nbd, qmp.</summary>
    string Name { get; }

    /// <summary>
    /// Runs one input, naming its steps in <paramref name="progress"/> and passing its cancellation to
    /// the code under test where it can, so that a loop that does I/O unwinds once the run overran.
    /// </summary>
    Task RunAsync(byte[] input, FuzzProgress progress);
}
