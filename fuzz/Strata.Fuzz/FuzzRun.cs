using System.Diagnostics;

namespace Strata.Fuzz;

/// <summary>Runs one input through a target, bounded in processor time and in wall time.</summary>
/// <remarks>
/// An honest run takes milliseconds. On a host shared with busy neighbours the wall clock says little
/// (a cold start waits seconds for its share of a core), so a hang is a run that used half a second of
/// processor time, the process's own, which a loop that spins runs up at whatever share it gets.
/// A run that waits for something that never comes uses none: the wall-time bound catches it.
/// </remarks>
internal static class FuzzRun
{
    public static readonly TimeSpan ProcessorLimit = TimeSpan.FromSeconds(0.5);

    /// <summary>Shorter than afl's own timeout (run.sh gives it 20 s), so a hang is reported by us, with where it was.</summary>
    public static readonly TimeSpan WallLimit = TimeSpan.FromSeconds(10);

    /// <summary>How long a run that overran may take to unwind once cancelled.</summary>
    private static readonly TimeSpan UnwindLimit = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);

    /// <summary>Throws what the target throws, or <see cref="FuzzHang"/> when the run overran a bound.</summary>
    public static async Task RunAsync(IFuzzTarget target, byte[] input)
    {
        ArgumentNullException.ThrowIfNull(target);
        using var cancel = new CancellationTokenSource();
        using var self = Process.GetCurrentProcess();
        var processorAtStart = self.TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        // Off the caller's thread: a parser on synchronous in-memory I/O runs inline, and a loop in it
        // would otherwise hold the very thread that is waiting to time it out.
        var progress = new FuzzProgress(cancel.Token);
        var run = Task.Run(() => target.RunAsync(input, progress));
        string? overran = null;
        while (overran is null)
        {
            // Which task ended first, not a caught TimeoutException: a run that completes just after
            // the poll's timer fired is a finished run, never a failure of the input.
            if (await Task.WhenAny(run, Task.Delay(Poll)) == run)
            {
                await run;
                return;
            }

            self.Refresh();
            var processor = self.TotalProcessorTime - processorAtStart;
            overran = processor > ProcessorLimit ? $"used {processor.TotalSeconds:0.#} s of processor time"
                : wall.Elapsed > WallLimit ? $"did not finish within {WallLimit.TotalSeconds:0} s"
                : null;
        }

        await cancel.CancelAsync();
        // A loop that does I/O meets the cancellation at its next call and unwinds with its stack,
        // which says where it was; a loop that does none keeps its thread.
        string message = $"{target.Name}: the run {overran}";
        if (await Task.WhenAny(run, Task.Delay(UnwindLimit)) != run)
        {
            throw new FuzzHang($"{message}, and did not stop when cancelled (step: {progress.Step})") { Unwound = false, Step = progress.Step };
        }

        try
        {
            await run;
        }
        catch (Exception e)
        {
            throw new FuzzHang(message, e) { Unwound = true, Step = progress.Step };
        }

        throw new FuzzHang(message) { Unwound = true, Step = progress.Step };
    }
}
