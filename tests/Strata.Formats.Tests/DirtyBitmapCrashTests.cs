using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Formats.Tests;

/// <summary>
/// The crash guarantee of issue 12: a dirty_bitmap store's writes are cut at every index of a seeded
/// workload (tracking start, guest writes announced through BeforeWrite, checkpoints, saves and
/// restarts), and after the "reopen" every range whose BeforeWrite returned (the guest write could
/// have reached the disk) is dirty in the loaded bitmap, which is then usable for tracking again.
/// </summary>
public sealed class DirtyBitmapCrashTests(ITestOutputHelper output)
{
    private const long Disk = 16L << 20;
    private const long Granularity = 4096;
    private const long Region = 256L << 10;

    [Fact]
    public async Task NoWriteWhoseIntentReturnedIsMissingAfterACrashAtAnyWrite()
    {
        int seed = Workload.NewSeed();
        output.WriteLine($"seed {seed}");
        await CrashAtEveryWriteAsync(seed, powerLoss: false);
    }

    [Fact]
    public async Task NoWriteWhoseIntentReturnedIsMissingAfterAPowerLossAtAnyWrite()
    {
        int seed = Workload.NewSeed();
        output.WriteLine($"seed {seed}");
        await CrashAtEveryWriteAsync(seed, powerLoss: true);
    }

    private static async Task CrashAtEveryWriteAsync(int seed, bool powerLoss)
    {
        var initial = await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region);
        var dryRun = new FaultInjectingNode(await DirtyBitmapTestFile.NodeOfAsync(initial));
        await new TrackerLife(seed).RunAsync(dryRun);
        long writes = dryRun.WritesSeen;
        Assert.True(writes > 50, $"seed {seed}: the workload wrote only {writes} times");

        for (long crashAt = 0; crashAt <= writes; crashAt++)
        {
            var memory = await DirtyBitmapTestFile.NodeOfAsync(initial);
            var power = new PowerLossNode(memory);
            IBlockNode below = powerLoss ? power : memory;
            var workload = new TrackerLife(seed);
            try
            {
                await workload.RunAsync(new FaultInjectingNode(below, crashAt, ownsInner: false));
            }
            catch (BlockException e) when (e.Message.StartsWith("injected crash", StringComparison.Ordinal))
            {
                // The process died here.
            }

            if (powerLoss)
            {
                await power.LosePowerAsync(new Random(seed ^ (int)crashAt));
            }

            string where = $"seed {seed}, crash at write {crashAt} of {writes}{(powerLoss ? ", power lost" : "")}";
            var (store, bits, loaded) = await DirtyBitmapTestFile.LoadAsync(memory);
            AssertCovers(workload.Returned, bits, $"{where}, {loaded}");

            // Recovered bits are usable: tracking starts again, stops, and the saved file is a superset still.
            await store.BeginTrackingAsync();
            await store.SaveAsync(bits, BitmapStoreState.Consistent);
            await store.DisposeAsync();
            var (again, saved, result) = await DirtyBitmapTestFile.LoadAsync(memory);
            await again.DisposeAsync();
            Assert.Equal(BitmapStoreState.Consistent, result.State);
            AssertCovers(workload.Returned, saved, $"{where}, after the next save");
        }
    }

    private static void AssertCovers(List<(long Offset, long Length)> ranges, DirtyBitmap bits, string where)
    {
        foreach (var (offset, length) in ranges)
        {
            var (dirty, run) = bits.GetRun(offset, length);
            Assert.True(dirty && run == length, $"{where}: the write at {offset} of {length} bytes is missing");
        }
    }

    /// <summary>A tracker's life, the same for a seed until its crash: what it announced is in <see cref="Returned"/>.</summary>
    private sealed class TrackerLife(int seed)
    {
        public List<(long Offset, long Length)> Returned { get; } = [];

        public async Task RunAsync(IBlockNode file)
        {
            var random = new Random(seed);
            await using var store = await DirtyBitmapStore.OpenAsync(file, "crash.dbmp");
            var bits = new DirtyBitmap(Disk, Granularity);
            await store.LoadAsync(bits);
            await store.BeginTrackingAsync();
            for (int op = 0; op < 150; op++)
            {
                int kind = random.Next(100);
                if (kind < 80)
                {
                    long offset = random.NextInt64(Disk);
                    long length = Math.Min(Disk - offset, random.Next(1, 3) == 1 ? random.Next(1, 65536) : random.Next(1, 1 << 20));
                    await store.BeforeWriteAsync(offset, length);
                    Returned.Add((offset, length));
                    bits.Set(offset, length);
                }
                else if (kind < 92)
                {
                    await store.CheckpointAsync(bits);
                }
                else
                {
                    await store.SaveAsync(bits, random.Next(2) == 0 ? BitmapStoreState.Frozen : BitmapStoreState.Consistent);
                    await store.BeginTrackingAsync();
                }
            }

            await store.SaveAsync(bits, BitmapStoreState.Consistent);
        }
    }
}
