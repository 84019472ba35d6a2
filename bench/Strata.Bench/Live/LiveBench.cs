using System.Runtime.InteropServices;

namespace Strata.Bench.Live;

/// <summary>
/// The live benchmarks (snapshot pause, merge speed, merge under load, cost of an active snapshot):
/// Strata's daemon against qemu-storage-daemon on the same files, in the same run, printed as tables.
/// </summary>
internal static class LiveBench
{
    /// <summary>The subcommands, in the order "live" runs them all.</summary>
    private static readonly (string Name, Func<LiveWork, CancellationToken, Task<string>> Measure)[] Benches =
    [
        ("snapshot-pause", SnapshotPauseBench.MeasureAsync),
        ("merge-speed", MergeSpeedBench.MeasureAsync),
        ("merge-load", MergeLoadBench.MeasureAsync),
        ("snapshot-cost", SnapshotCostBench.MeasureAsync),
        ("bitmap-cost", BitmapCostBench.MeasureAsync),
        ("bitmap-memory", BitmapMemoryBench.MeasureAsync),
        ("backup", BackupBench.MeasureAsync),
        ("backup-live", BackupLiveBench.MeasureAsync),
        ("freeze-window", FreezeWindowBench.MeasureAsync),
        ("backup-create", BackupCreateBench.MeasureAsync),
    ];

    public static string Commands => "live|" + string.Join('|', Benches.Select(b => b.Name));

    public static bool IsCommand(string name) => name == "live" || Benches.Any(b => b.Name == name);

    public static async Task<int> RunAsync(string command, string[] args)
    {
        var options = LiveOptions.Parse(command, args);
        if (options is null)
        {
            return 2;
        }

        // Ctrl-C or SIGTERM cancels the run, so that servers and fio are stopped and the folder removed.
        using var interrupt = new CancellationTokenSource();
        void Cancel(PosixSignalContext context)
        {
            context.Cancel = true;
            interrupt.Cancel();
        }

        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var work = new LiveWork(options);
        try
        {
            foreach (var (name, measure) in Benches)
            {
                if (command == "live" || command == name)
                {
                    await options.EmitAsync(await measure(work, interrupt.Token));
                }
            }
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
        {
            Console.Error.WriteLine($"{command}: interrupted");
            return 130;
        }

        Console.Error.WriteLine($"{command}: done in {clock.Elapsed.TotalSeconds:0} s");
        return 0;
    }
}
