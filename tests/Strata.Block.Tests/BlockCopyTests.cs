using Strata.Block.Copy;
using Strata.TestKit;

namespace Strata.Block.Tests;

public sealed class BlockCopyTests
{
    private const int DiskSize = 4 << 20;
    private const int Page = 4096;
    private const int Rounds = 12;

    [Fact]
    public async Task ACopyOfAWholeChainReadsAsTheChainDoes()
    {
        await ForSeedsAsync(async (random, seed) =>
        {
            var (_, _, top) = await RandomChainAsync(random);
            var expected = await ReadAllAsync(top);
            var (target, dirty) = await RandomTargetAsync(random);

            await new BlockCopy(ChainView.Whole(top), target, RandomOptions(random) with { TargetIsZero = !dirty }).CopyAllAsync(DiskSize);

            AssertSame(expected, target.ToArray(), $"seed {seed}, dirty target {dirty}");
        });
    }

    [Fact]
    public async Task HolesAndZeroesAreNotWrittenToATargetThatReadsAsZeroes()
    {
        var source = new MemoryNode(DiskSize);
        await source.WriteAsync(3 * Page, Filled(Page, 1));
        await source.WriteAsync(10 * Page, new byte[2 * Page]);
        await source.WriteAsync(20 * Page, Filled(Page, 2));
        var target = new MemoryNode(DiskSize);

        await new BlockCopy(ChainView.Whole(source), target, new BlockCopyOptions { TargetIsZero = true, DetectZeroes = true })
            .CopyAllAsync(DiskSize);

        Assert.Equal(source.ToArray(), target.ToArray());
        var written = new List<long>();
        for (long offset = 0; offset < DiskSize;)
        {
            var extent = await target.GetBlockStatusAsync(offset, DiskSize - offset);
            if (extent.IsData)
            {
                written.Add(extent.Offset / Page);
            }

            offset = extent.End;
        }

        Assert.Equal([3L, 20L], written);
    }

    [Fact]
    public async Task AViewAboveTheBaseCopiesWhatTheUpperLayersHoldAndLeavesTheRestOfTheBaseAlone()
    {
        await ForSeedsAsync(async (random, seed) =>
        {
            var (baseNode, mid, top) = await RandomChainAsync(random);
            var expected = await ReadAllAsync(top);
            var untouched = new List<(long Page, bool Data)>();
            for (long page = 0; page < DiskSize / Page; page++)
            {
                if (!await IsAllocatedAsync(top, page) && !await IsAllocatedAsync(mid, page))
                {
                    untouched.Add((page, (await baseNode.GetBlockStatusAsync(page * Page, Page)).IsData));
                }
            }

            await new BlockCopy(ChainView.Above(top, baseNode), baseNode, RandomOptions(random)).CopyAllAsync(DiskSize);

            AssertSame(expected, baseNode.ToArray(), $"seed {seed}");
            foreach (var (page, data) in untouched)
            {
                Assert.True((await baseNode.GetBlockStatusAsync(page * Page, Page)).IsData == data,
                    $"seed {seed}: page {page}, allocated in no upper layer, was written");
            }
        });
    }

    [Fact]
    public async Task OnlyTheRangesAskedForAreCopied()
    {
        await ForSeedsAsync(async (random, seed) =>
        {
            var (_, _, top) = await RandomChainAsync(random);
            var source = await ReadAllAsync(top);
            var target = new MemoryNode(DiskSize);
            await target.WriteAsync(0, Filled(DiskSize, 0x5a));
            var expected = target.ToArray();
            var ranges = RandomRanges(random);
            foreach (var range in ranges)
            {
                source.AsSpan((int)range.Offset, (int)range.Length).CopyTo(expected.AsSpan((int)range.Offset));
            }

            var copy = new BlockCopy(ChainView.Whole(top), target, RandomOptions(random));
            await copy.RunAsync(await copy.PlanAsync(ranges));

            AssertSame(expected, target.ToArray(), $"seed {seed}, ranges {string.Join(' ', ranges)}");
        });
    }

    [Fact]
    public async Task BackingDifferencesKeepWhatTheOverlayReadsOverANewBackingAndCopyNothingElse()
    {
        await ForSeedsAsync(async (random, seed) =>
        {
            var oldBase = new MemoryNode(DiskSize);
            await WriteRandomlyAsync(oldBase, random, 10);
            var overlay = new MemoryOverlayNode(oldBase, DiskSize);
            await WriteRandomlyAsync(overlay, random, 10);
            MemoryNode? newBase = null;
            if (random.Next(4) != 0)
            {
                // Mostly the old content, shorter or as long, with some runs changed.
                newBase = new MemoryNode(random.Next(2) == 0 ? DiskSize : DiskSize / 2);
                await newBase.WriteAsync(0, oldBase.ToArray().AsMemory(0, (int)newBase.Size));
                await WriteRandomlyAsync(newBase, random, 4);
            }

            var expected = await ReadAllAsync(overlay);
            var same = new List<long>();
            var oldData = oldBase.ToArray();
            var newData = new byte[DiskSize];
            newBase?.ToArray().CopyTo(newData, 0);
            for (long page = 0; page < DiskSize / Page; page++)
            {
                if (!await IsAllocatedAsync(overlay, page) && oldData.AsSpan((int)(page * Page), Page).SequenceEqual(newData.AsSpan((int)(page * Page), Page)))
                {
                    same.Add(page);
                }
            }

            await BackingDifferences.CopyAsync(overlay, newBase);
            overlay.Backing = newBase;

            AssertSame(expected, await ReadAllAsync(overlay), $"seed {seed}, new base {newBase?.Size}");
            foreach (long page in same)
            {
                Assert.False(await IsAllocatedAsync(overlay, page), $"seed {seed}: page {page} reads the same in both chains but was copied");
            }
        });
    }

    [Fact]
    public async Task AnObserverHearsEveryByteOfTheRangesOnceAsTheTargetThenReadsIt()
    {
        await ForSeedsAsync(async (random, seed) =>
        {
            var (_, _, top) = await RandomChainAsync(random);
            var (target, dirty) = await RandomTargetAsync(random);

            var ranges = RandomRanges(random);
            var observer = new RecordingObserver(DiskSize);
            var copy = new BlockCopy(ChainView.Whole(top), target, RandomOptions(random) with { TargetIsZero = !dirty, Observer = observer });
            await copy.RunAsync(await copy.PlanAsync(ranges));

            var inRanges = new bool[DiskSize];
            foreach (var range in ranges)
            {
                inRanges.AsSpan((int)range.Offset, (int)range.Length).Fill(true);
            }

            byte[] written = target.ToArray();
            for (int i = 0; i < DiskSize; i++)
            {
                int expected = inRanges[i] ? 1 : 0;
                if (observer.Times[i] != expected || (inRanges[i] && observer.Heard[i] != written[i]))
                {
                    Assert.Fail($"seed {seed}, dirty target {dirty}: byte {i} heard {observer.Times[i]} time(s) as {observer.Heard[i]}, the target reads {written[i]}");
                }
            }
        });
    }

    [Fact]
    public async Task AnObserverOfABoundedViewHearsOnlyWhatTheViewCopiesAndHearsItAsTheTargetReads()
    {
        await ForSeedsAsync(async (random, seed) =>
        {
            var (baseNode, _, top) = await RandomChainAsync(random);
            var observer = new RecordingObserver(DiskSize);

            await new BlockCopy(ChainView.Above(top, baseNode), baseNode, RandomOptions(random) with { Observer = observer }).CopyAllAsync(DiskSize);

            byte[] written = baseNode.ToArray();
            for (int i = 0; i < DiskSize; i++)
            {
                if (observer.Times[i] > 1 || (observer.Times[i] == 1 && observer.Heard[i] != written[i]))
                {
                    Assert.Fail($"seed {seed}: byte {i} heard {observer.Times[i]} time(s) as {observer.Heard[i]}, the base reads {written[i]}");
                }
            }
        });
    }

    [Fact]
    public void AnObserverIsRefusedOnACopyThatWritesOnlyDifferences()
    {
        var node = new MemoryNode(DiskSize);
        Assert.Throws<ArgumentException>(() => new BlockCopy(ChainView.Whole(node), node,
            new BlockCopyOptions { CompareWith = ChainView.Whole(node), Observer = new RecordingObserver(DiskSize) }));
    }

    [Fact]
    public async Task TheFirstFailedWriteStopsEveryWorkerAndIsThrown()
    {
        var source = new MemoryNode(DiskSize);
        await source.WriteAsync(0, Filled(DiskSize, 3));
        var failing = new FaultInjectingNode(new MemoryNode(DiskSize), writesBeforeCrash: 3);
        var copy = new BlockCopy(ChainView.Whole(source), failing, new BlockCopyOptions { ChunkSize = 64 << 10, Parallelism = 4 });

        var e = await Assert.ThrowsAsync<BlockException>(() => copy.CopyAllAsync(DiskSize));

        Assert.Contains("injected crash", e.Message);
        Assert.True(failing.WritesSeen < DiskSize / (64 << 10), $"{failing.WritesSeen} writes were tried after the failure");
    }

    [Fact]
    public async Task ACancelledCopyStopsAndThrowsOperationCanceled()
    {
        var source = new MemoryNode(DiskSize);
        await source.WriteAsync(0, Filled(DiskSize, 4));
        using var cancel = new CancellationTokenSource();
        int steps = 0;
        var copy = new BlockCopy(ChainView.Whole(source), new MemoryNode(DiskSize), new BlockCopyOptions
        {
            ChunkSize = 64 << 10,
            Step = async (chunk, token) =>
            {
                await chunk.CopyAsync(token);
                if (Interlocked.Increment(ref steps) == 2)
                {
                    await cancel.CancelAsync();
                }
            },
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => copy.CopyAllAsync(DiskSize, cancellationToken: cancel.Token));
        Assert.True(steps < DiskSize / (64 << 10), $"all {steps} chunks were copied");
    }

    [Fact]
    public async Task ProgressAddsUpToThePlan()
    {
        var random = new Random(5);
        var (_, _, top) = await RandomChainAsync(random);
        long copied = 0;
        double last = -1;
        var copy = new BlockCopy(ChainView.Whole(top), new MemoryNode(DiskSize),
            new BlockCopyOptions { ChunkSize = 32 << 10, Parallelism = 3, Copied = n => copied += n });
        var plan = await copy.PlanAllAsync(DiskSize);

        await copy.RunAsync(plan, p =>
        {
            Assert.True(p >= last, $"progress went back from {last} to {p}");
            last = p;
        });

        Assert.Equal(plan.TotalBytes, copied);
        Assert.Equal(100, last);
    }

    [Fact]
    public async Task ASpeedLimitCopiesOneChunkAtATimeAndWorkersStayBounded()
    {
        var source = new MemoryNode(DiskSize);
        await source.WriteAsync(0, Filled(DiskSize, 6));
        foreach (long speed in new[] { 0L, long.MaxValue / 2 })
        {
            int running = 0;
            int most = 0;
            var copy = new BlockCopy(ChainView.Whole(source), new MemoryNode(DiskSize), new BlockCopyOptions
            {
                ChunkSize = 64 << 10,
                Parallelism = 3,
                Speed = speed,
                Step = async (chunk, token) =>
                {
                    int now = Interlocked.Increment(ref running);
                    InterlockedMax(ref most, now);
                    await Task.Delay(1, token);
                    await chunk.CopyAsync(token);
                    Interlocked.Decrement(ref running);
                },
            });

            await copy.CopyAllAsync(DiskSize);

            Assert.InRange(most, 1, speed > 0 ? 1 : 3);
        }
    }

    [Fact]
    public async Task OfflineCommitCopiesWhatLiesAboveTheBaseThenEmptiesTheTop()
    {
        await ForSeedsAsync(async (random, seed) =>
        {
            var (baseNode, mid, top) = await RandomChainAsync(random);
            var expected = await ReadAllAsync(top);
            bool intoMid = random.Next(2) == 0;
            bool empty = random.Next(3) != 0;
            int allocated = top.AllocatedPages;
            IBlockNode target = intoMid ? mid : baseNode;

            await OfflineCommit.RunAsync(top, target, (node, _) => ValueTask.FromResult(node), emptyTop: empty);

            AssertSame(expected, await ReadAllAsync(target), $"seed {seed}, into {(intoMid ? "mid" : "base")}");
            Assert.True((empty ? 0 : allocated) == top.AllocatedPages, $"seed {seed}: the top keeps {top.AllocatedPages} pages");
            if (intoMid)
            {
                // Into a lower base the layers between keep what they held, and the top reads them again (why qemu-img's -b implies -d).
                AssertSame(expected, await ReadAllAsync(top), $"seed {seed}: the top reads otherwise after the commit");
            }
        });
    }

    [Fact]
    public async Task OfflineCommitGrowsASmallerBase()
    {
        var baseNode = new MemoryNode(1 << 20);
        await baseNode.WriteAsync(0, Filled(1 << 20, 1));
        var top = new MemoryOverlayNode(baseNode, 2 << 20);
        await top.WriteAsync((1 << 20) + 4096, Filled(8192, 2));
        var expected = await ReadAllAsync(top);

        await OfflineCommit.RunAsync(top, baseNode, (node, _) => ValueTask.FromResult(node), emptyTop: true);

        Assert.Equal(2 << 20, baseNode.Size);
        Assert.Equal(expected, baseNode.ToArray());
    }

    [Fact]
    public async Task OfflineCommitOfATopThatCannotBeEmptiedIsRefusedBeforeAnythingIsWritten()
    {
        var baseNode = new MemoryNode(DiskSize);
        var overlay = new MemoryOverlayNode(baseNode, DiskSize);
        await overlay.WriteAsync(0, Filled(Page, 9));
        bool opened = false;

        var e = await Assert.ThrowsAsync<BlockException>(() => OfflineCommit.RunAsync(new DelegatingNode(overlay), baseNode, (node, _) =>
        {
            opened = true;
            return ValueTask.FromResult(node);
        }, emptyTop: true));

        Assert.Equal(BlockError.NotSupported, e.Error);
        Assert.False(opened);
        Assert.Equal(new byte[DiskSize], baseNode.ToArray());
    }

    [Fact]
    public async Task OfflineCommitIntoALayerNotBelowTheTopIsRefused()
    {
        var top = new MemoryOverlayNode(new MemoryNode(DiskSize), DiskSize);
        var e = await Assert.ThrowsAsync<BlockException>(() =>
            OfflineCommit.RunAsync(top, new MemoryNode(DiskSize), (node, _) => ValueTask.FromResult(node), emptyTop: true));
        Assert.Equal(BlockError.InvalidArgument, e.Error);
    }

    /// <summary>Runs <paramref name="body"/> <see cref="Rounds"/> times, each with its own seed, taken from the clock (failures name it).</summary>
    private static async Task ForSeedsAsync(Func<Random, int, Task> body)
    {
        int first = Environment.TickCount;
        for (int round = 0; round < Rounds; round++)
        {
            int seed = unchecked(first + round);
            await body(new Random(seed), seed);
        }
    }

    /// <summary>A base and two overlays, each written at random: data, zeroes and holes at every depth.</summary>
    private static async Task<(MemoryNode Base, MemoryOverlayNode Mid, MemoryOverlayNode Top)> RandomChainAsync(Random random)
    {
        var baseNode = new MemoryNode(DiskSize);
        var mid = new MemoryOverlayNode(baseNode, DiskSize);
        var top = new MemoryOverlayNode(mid, DiskSize);
        await WriteRandomlyAsync(baseNode, random, 12);
        await WriteRandomlyAsync(mid, random, 8);
        await WriteRandomlyAsync(top, random, 8);
        return (baseNode, mid, top);
    }

    /// <summary>A target that reads as zeroes (fresh) or, at random, one written all over (dirty).</summary>
    private static async Task<(MemoryNode Target, bool Dirty)> RandomTargetAsync(Random random)
    {
        var target = new MemoryNode(DiskSize);
        bool dirty = random.Next(2) == 0;
        if (dirty)
        {
            await target.WriteAsync(0, Filled(DiskSize, 0xa5));
        }

        return (target, dirty);
    }

    private static async Task WriteRandomlyAsync(IBlockNode layer, Random random, int count)
    {
        for (int i = 0; i < count; i++)
        {
            long offset = random.NextInt64(0, layer.Size - 1);
            int length = (int)Math.Min(random.Next(1, 400_000), layer.Size - offset);
            if (random.Next(4) == 0)
            {
                await layer.WriteZeroesAsync(offset, length);
                continue;
            }

            var data = new byte[length];
            random.NextBytes(data);
            if (random.Next(3) == 0)
            {
                // Data that reads as zeroes: a copy that scans for zeroes may write it as such.
                data.AsSpan(length / 4, length / 2).Clear();
            }

            await layer.WriteAsync(offset, data);
        }
    }

    private static BlockCopyOptions RandomOptions(Random random) => new()
    {
        ChunkSize = random.Next(4) switch
        {
            0 => Page,
            1 => (3 * Page) + 100,
            2 => 1 << 20,
            _ => BlockCopyOptions.DefaultChunkSize,
        },
        Parallelism = random.Next(1, 5),
        DetectZeroes = random.Next(2) == 0,
        ZeroFlags = random.Next(2) == 0 ? ZeroFlags.None : ZeroFlags.MayUnmap,
    };

    /// <summary>A few disjoint ranges in disk order, some of them adjacent.</summary>
    private static List<CopyRange> RandomRanges(Random random)
    {
        var cuts = Enumerable.Range(0, random.Next(2, 12)).Select(_ => random.NextInt64(0, DiskSize)).Distinct().Order().ToList();
        var ranges = new List<CopyRange>();
        for (int i = 0; i + 1 < cuts.Count; i++)
        {
            if (random.Next(3) != 0)
            {
                ranges.Add(new CopyRange(cuts[i], cuts[i + 1] - cuts[i]));
            }
        }

        return ranges;
    }

    private static async Task<bool> IsAllocatedAsync(IBlockNode layer, long page) =>
        (await layer.GetBlockStatusAsync(page * Page, Page)).IsAllocated;

    private static async Task<byte[]> ReadAllAsync(IBlockNode node)
    {
        var data = new byte[node.Size];
        await node.ReadAsync(0, data);
        return data;
    }

    private static byte[] Filled(int length, byte value)
    {
        var data = new byte[length];
        data.AsSpan().Fill(value);
        return data;
    }

    private static void AssertSame(byte[] expected, byte[] actual, string what)
    {
        int first = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(first == expected.Length && actual.Length == expected.Length,
            $"{what}: differs from byte {first} (sizes {expected.Length} and {actual.Length})");
    }

    private static void InterlockedMax(ref int location, int value)
    {
        for (int seen = Volatile.Read(ref location); value > seen; seen = Volatile.Read(ref location))
        {
            Interlocked.CompareExchange(ref location, value, seen);
        }
    }
}
