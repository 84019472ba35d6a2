using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;

namespace Strata.Formats.Tests;

public sealed class DirtyBitmapStoreTests
{
    private const long Disk = 64L << 20;
    private const long Granularity = 4096;
    private const long Region = 1L << 20;

    [Fact]
    public async Task NewFileLoadsConsistentAndEmpty()
    {
        var (store, bits, loaded) = await DirtyBitmapTestFile.LoadAsync(await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity)));
        await using var owned = store;
        Assert.Equal(new BitmapLoadResult(BitmapStoreState.Consistent, Recovered: false), loaded);
        Assert.Equal(0, bits.DirtyBytes);
        Assert.Equal(Granularity, store.Granularity);
        Assert.Equal(Disk, store.DiskSize);
    }

    [Fact]
    public async Task SavedBitsLoadBackBitForBitWithTheSavedState()
    {
        var memory = await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region));
        var (store, bits, _) = await DirtyBitmapTestFile.LoadAsync(new DelegatingNode(memory));
        await store.BeginTrackingAsync();
        bits.Set(12345, 100_000);
        bits.Set(Disk - 1, 1);
        await store.SaveAsync(bits, BitmapStoreState.Frozen);
        await store.DisposeAsync();

        var (again, loaded, result) = await DirtyBitmapTestFile.LoadAsync(memory);
        await using var owned = again;
        Assert.Equal(new BitmapLoadResult(BitmapStoreState.Frozen, Recovered: false), result);
        Assert.Equal(bits.Sha256(), loaded.Sha256());
    }

    [Fact]
    public async Task BeginTrackingLeavesTheFileActiveAndAReloadRecoversIntendedRegions()
    {
        var memory = await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region));
        var (store, _, _) = await DirtyBitmapTestFile.LoadAsync(new DelegatingNode(memory));
        await store.BeginTrackingAsync();
        await store.BeforeWriteAsync(3 * Region + 10, 5);

        // The tracker "dies" here: nothing saved.
        var (again, loaded, result) = await DirtyBitmapTestFile.LoadAsync(memory);
        await using var owned = again;
        Assert.Equal(new BitmapLoadResult(BitmapStoreState.Active, Recovered: true), result);
        Assert.Equal([(3 * Region, Region)], loaded.DirtyRuns().ToList());
    }

    [Fact]
    public async Task BeforeWriteIntoAnIntendedRegionCompletesAtOnceWithoutIo()
    {
        var memory = await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region));
        var counting = new FaultInjectingNode(memory);
        var (store, _, _) = await DirtyBitmapTestFile.LoadAsync(counting);
        await using var owned = store;
        await store.BeginTrackingAsync();
        await store.BeforeWriteAsync(0, 4096);
        long writes = counting.WritesSeen;

        var again = store.BeforeWriteAsync(Region - 4096, 4096);
        Assert.True(again.IsCompletedSuccessfully);
        Assert.Equal(writes, counting.WritesSeen);
    }

    [Fact]
    public async Task ConcurrentFirstWritesIntoOneRegionWaitForOneDurableUpdate()
    {
        var memory = await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region));
        var gated = new GatedFlushNode(memory);
        var (store, _, _) = await DirtyBitmapTestFile.LoadAsync(gated);
        await using var owned = store;
        await store.BeginTrackingAsync();
        int flushesBefore = memory.FlushCount;
        gated.Hold();

        var writes = Enumerable.Range(0, 8).Select(i => store.BeforeWriteAsync(5 * Region + i * 4096, 4096).AsTask()).ToList();
        await gated.Waiting;
        Assert.All(writes, w => Assert.False(w.IsCompleted));
        gated.Release();
        await Task.WhenAll(writes);
        Assert.Equal(1, memory.FlushCount - flushesBefore);
    }

    [Fact]
    public async Task AFailedIntentUpdateFailsTheWriteAndALaterOneSucceeds()
    {
        var memory = await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region));
        var faulty = new FaultInjectingNode(memory);
        var (store, _, _) = await DirtyBitmapTestFile.LoadAsync(faulty);
        await using var owned = store;
        await store.BeginTrackingAsync();
        faulty.CrashAfter(0);
        await Assert.ThrowsAsync<BlockException>(async () => await store.BeforeWriteAsync(0, 1));
        faulty.CrashAfter(long.MaxValue);
        await store.BeforeWriteAsync(0, 1);
    }

    [Fact]
    public async Task CheckpointForgetsIntentsTheWrittenBitsCover()
    {
        var memory = await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region));
        var (store, bits, _) = await DirtyBitmapTestFile.LoadAsync(new DelegatingNode(memory));
        await store.BeginTrackingAsync();
        await store.BeforeWriteAsync(7 * Region, 4096);
        bits.Set(7 * Region, 4096);
        await store.CheckpointAsync(bits);

        var (again, loaded, result) = await DirtyBitmapTestFile.LoadAsync(memory);
        await using var owned = again;
        Assert.Equal(BitmapStoreState.Active, result.State);
        Assert.Equal([(7 * Region, 4096L)], loaded.DirtyRuns().ToList());
    }

    [Fact]
    public async Task TrackingResumedOnAFileLeftActiveKeepsItsIntents()
    {
        var memory = await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region));
        var (first, _, _) = await DirtyBitmapTestFile.LoadAsync(new DelegatingNode(memory));
        await first.BeginTrackingAsync();
        await first.BeforeWriteAsync(2 * Region, 1);

        // A new tracker recovers and begins again; it dies before saving: the first one's intent must survive.
        var (second, _, _) = await DirtyBitmapTestFile.LoadAsync(new DelegatingNode(memory));
        await second.BeginTrackingAsync();
        await second.BeforeWriteAsync(9 * Region, 1);
        var (third, loaded, _) = await DirtyBitmapTestFile.LoadAsync(memory);
        await using var owned = third;
        Assert.Equal([(2 * Region, Region), (9 * Region, Region)], loaded.DirtyRuns().ToList());
    }

    [Fact]
    public async Task ATornHeaderUpdateFallsBackToThePreviousCopy()
    {
        var memory = await DirtyBitmapTestFile.NodeOfAsync(await DirtyBitmapTestFile.NewAsync(Disk, Granularity, Region));
        var (store, bits, _) = await DirtyBitmapTestFile.LoadAsync(new DelegatingNode(memory));
        await store.BeginTrackingAsync();
        await store.BeforeWriteAsync(Region, 1);
        bits.Set(Region, 1);
        await store.SaveAsync(bits, BitmapStoreState.Consistent);
        var header = await DirtyBitmapFile.ReadHeaderAsync(memory, "t");

        // Tear the newest copy: half its sector holds garbage.
        await memory.WriteAsync((long)header.Slot * DirtyBitmapHeader.SlotSize + 64, new byte[64].Select(_ => (byte)0xa5).ToArray());
        var previous = await DirtyBitmapFile.ReadHeaderAsync(memory, "t");
        Assert.Equal(header.Generation - 1, previous.Generation);
        Assert.Equal(DirtyBitmapFileState.Active, previous.State);

        var (again, loaded, result) = await DirtyBitmapTestFile.LoadAsync(memory);
        await using var owned = again;
        Assert.Equal(new BitmapLoadResult(BitmapStoreState.Active, Recovered: true), result);
        Assert.True(loaded.IsDirty(Region));
    }

    [Fact]
    public async Task ASecondTrackerOfOneFileIsRefusedNamingTheHolder()
    {
        using var dir = new TempFolder("dbmp");
        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        string path = dir.File("t0.dbmp");
        await using var first = await files.CreateAsync(path, Disk, Granularity);
        Assert.True(files.Exists(path));

        var e = await Assert.ThrowsAsync<BlockException>(async () => await files.OpenAsync(path));
        Assert.Equal(BlockError.Locked, e.Error);
        Assert.Contains("this process", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreatingOverAnExistingPathIsRefusedAndLeavesItAlone()
    {
        using var dir = new TempFolder("dbmp");
        string path = dir.File("t0.dbmp");
        await File.WriteAllTextAsync(path, "mine");
        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        await Assert.ThrowsAnyAsync<IOException>(async () => await files.CreateAsync(path, Disk, Granularity));
        Assert.Equal("mine", await File.ReadAllTextAsync(path));
    }

    [Fact]
    public async Task RemoveDeletesTheFile()
    {
        using var dir = new TempFolder("dbmp");
        string path = dir.File("t0.dbmp");
        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        var store = await files.CreateAsync(path, Disk, Granularity);
        await store.RemoveAsync();
        await store.DisposeAsync();
        Assert.False(files.Exists(path));
    }

    [Fact]
    public async Task AFileClosedByItsTrackerReopensForTheNextOne()
    {
        using var dir = new TempFolder("dbmp");
        string path = dir.File("t0.dbmp");
        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        var store = await files.CreateAsync(path, Disk, Granularity);
        var bits = new DirtyBitmap(Disk, Granularity);
        await store.BeginTrackingAsync();
        bits.Set(0, 1);
        await store.SaveAsync(bits, BitmapStoreState.Consistent);
        await store.DisposeAsync();

        await using var next = await files.OpenAsync(path);
        var loaded = new DirtyBitmap(Disk, Granularity);
        Assert.Equal(BitmapStoreState.Consistent, (await next.LoadAsync(loaded)).State);
        Assert.Equal(bits.Sha256(), loaded.Sha256());
    }

    /// <summary>Flushes wait while held: a persist in progress that concurrent callers must share.</summary>
    private sealed class GatedFlushNode(IBlockNode inner) : DelegatingNode(inner)
    {
        private TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _waiting = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _held;

        public Task Waiting => _waiting.Task;

        public void Hold()
        {
            _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
            _held = true;
        }

        public void Release() => _gate.TrySetResult();

        public override async ValueTask FlushAsync(CancellationToken cancellationToken = default)
        {
            if (_held)
            {
                _waiting.TrySetResult();
                await _gate.Task;
            }

            await Inner.FlushAsync(cancellationToken);
        }
    }
}
