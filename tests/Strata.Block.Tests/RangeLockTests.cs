namespace Strata.Block.Tests;

public sealed class RangeLockTests
{
    [Fact]
    public async Task SharedHoldersOfOverlappingRangesDoNotWait()
    {
        var locks = new RangeLock();
        using var a = await locks.AcquireSharedAsync(0, 100);
        var b = locks.AcquireSharedAsync(50, 100);
        Assert.True(b.IsCompleted);
        (await b).Dispose();
    }

    [Fact]
    public async Task ExclusiveHolderWaitsForOverlappingSharedHolders()
    {
        var locks = new RangeLock();
        var shared = await locks.AcquireSharedAsync(0, 4096);
        var exclusive = locks.AcquireExclusiveAsync(4000, 4096).AsTask();
        await Task.Delay(20);
        Assert.False(exclusive.IsCompleted);
        shared.Dispose();
        (await exclusive.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }

    [Fact]
    public async Task NewSharedHoldersWaitBehindAPendingExclusiveOne()
    {
        var locks = new RangeLock();
        var first = await locks.AcquireSharedAsync(0, 4096);
        var exclusive = locks.AcquireExclusiveAsync(0, 4096).AsTask();
        var later = locks.AcquireSharedAsync(0, 10).AsTask();
        await Task.Delay(20);
        Assert.False(later.IsCompleted);
        first.Dispose();
        var held = await exclusive.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(later.IsCompleted);
        held.Dispose();
        (await later.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }

    [Fact]
    public async Task DisjointExclusiveRangesAreGrantedTogether()
    {
        var locks = new RangeLock();
        using var a = await locks.AcquireExclusiveAsync(0, 4096);
        var b = locks.AcquireExclusiveAsync(4096, 4096);
        Assert.True(b.IsCompleted);
        (await b).Dispose();
    }

    [Fact]
    public async Task CancelledWaiterDoesNotBlockOthers()
    {
        var locks = new RangeLock();
        var shared = await locks.AcquireSharedAsync(0, 4096);
        using var cts = new CancellationTokenSource();
        var exclusive = locks.AcquireExclusiveAsync(0, 4096, cts.Token).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => exclusive);
        var again = locks.AcquireSharedAsync(0, 4096);
        Assert.True(again.IsCompleted);
        (await again).Dispose();
        shared.Dispose();
    }
}
