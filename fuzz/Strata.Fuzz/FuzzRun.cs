namespace Strata.Fuzz;

/// <summary>Runs one input through a target with a time bound.</summary>
internal static class FuzzRun
{
    /// <summary>
    /// Far longer than an honest run takes on a loaded machine (milliseconds), shorter than afl's own
    /// timeout (run.sh gives it 5 s), so a hang is reported by us, with its target and where it was.
    /// </summary>
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromSeconds(2);

    /// <summary>How long a run that overran may take to unwind once cancelled.</summary>
    private static readonly TimeSpan UnwindLimit = TimeSpan.FromSeconds(1);

    /// <summary>Throws what the target throws, or <see cref="FuzzHang"/> when it has not finished within <paramref name="limit"/>.</summary>
    public static async Task RunAsync(IFuzzTarget target, byte[] input, TimeSpan limit)
    {
        ArgumentNullException.ThrowIfNull(target);
        using var cancel = new CancellationTokenSource();
        // Off the caller's thread: a parser on synchronous in-memory I/O runs inline, and a loop in it
        // would otherwise hold the very thread that is waiting to time it out.
        var run = Task.Run(() => target.RunAsync(input, cancel.Token));
        try
        {
            await run.WaitAsync(limit);
            return;
        }
        catch (TimeoutException) when (!run.IsCompleted)
        {
            await cancel.CancelAsync();
        }

        // A loop that does I/O meets the cancellation at its next call and unwinds with its stack,
        // which says where it was; a loop that does none keeps its thread.
        string message = $"{target.Name}: the run did not finish within {limit.TotalSeconds:0.#} s";
        try
        {
            await run.WaitAsync(UnwindLimit);
        }
        catch (TimeoutException) when (!run.IsCompleted)
        {
            throw new FuzzHang(message + ", nor stop when cancelled") { Unwound = false };
        }
        catch (Exception e)
        {
            throw new FuzzHang(message, e) { Unwound = true };
        }

        throw new FuzzHang(message) { Unwound = true };
    }
}
