using System.Diagnostics;
using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Formats.DirtyBitmaps;

namespace Strata.Bench;

/// <summary>
/// The per-write cost of a dirty_bitmap store's crash guarantee on its fast path: BeforeWrite into
/// regions already intended, against the marking every tracked write pays anyway (DirtyBitmap.Set),
/// on a 64 GiB disk at 4 KiB granularity with every region intended. Prints nanoseconds per call,
/// their ratio and bytes allocated per call (docs/formats/dirty-bitmap.md, "Crash safety").
/// </summary>
public static class BitmapIntentBench
{
    public const string Command = "bitmap-intents";

    private const long Disk = 64L << 30;
    private const long Granularity = 4096;
    private const int Calls = 20_000_000;

    public static async Task<int> RunAsync()
    {
        await using var store = await DirtyBitmapStore.CreateAsync(new MemoryNode(4 << 20), "bench.dbmp", Disk, Granularity);
        var bits = new DirtyBitmap(Disk, Granularity);
        await store.LoadAsync(bits);
        await store.BeginTrackingAsync();
        await store.BeforeWriteAsync(0, Disk);

        var offsets = new long[4096];
        var random = new Random(42);
        for (int i = 0; i < offsets.Length; i++)
        {
            offsets[i] = random.NextInt64(Disk / 4096) * 4096;
        }

        for (int round = 0; round < 2; round++)
        {
            // The first round warms up; the second is printed.
            double intent = Measure(i =>
            {
                if (!CompletedAtOnce(store.BeforeWriteAsync(offsets[i & 4095], 4096)))
                {
                    throw new InvalidOperationException("the fast path did not complete at once");
                }
            }, out long intentBytes);
            double mark = Measure(i => bits.Set(offsets[i & 4095], 4096), out long markBytes);
            if (round == 1)
            {
                Console.WriteLine($"BeforeWrite (fast path): {intent:F1} ns/call, {intentBytes / (double)Calls:F2} B/call");
                Console.WriteLine($"DirtyBitmap.Set:         {mark:F1} ns/call, {markBytes / (double)Calls:F2} B/call");
                Console.WriteLine($"ratio BeforeWrite/Set:   {intent / mark:F2}");
            }
        }

        return 0;
    }

    private static bool CompletedAtOnce(ValueTask call) => call.IsCompletedSuccessfully;

    private static double Measure(Action<int> call, out long allocated)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < Calls; i++)
        {
            call(i);
        }

        clock.Stop();
        allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        return clock.Elapsed.TotalMilliseconds * 1e6 / Calls;
    }
}
