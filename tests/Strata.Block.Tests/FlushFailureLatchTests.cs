namespace Strata.Block.Tests;

/// <summary>A failed flush fails every later one (QEMU's page_cache_inconsistent); refusals and successes change nothing.</summary>
public sealed class FlushFailureLatchTests
{
    [Fact]
    public async Task AfterAFailedFlushEveryLaterFlushFailsWithoutReachingTheStorage()
    {
        var latch = new FlushFailureLatch("disk.img");
        int calls = 0;
        await latch.FlushAsync(() => { calls++; return ValueTask.CompletedTask; });
        await Assert.ThrowsAsync<BlockException>(async () => await latch.FlushAsync(() =>
        {
            calls++;
            return ValueTask.FromException(new BlockException(BlockError.Io, "fdatasync failed: Input/output error"));
        }));

        // The storage would now say yes: the writes the failed flush could not make durable are gone.
        var later = await Assert.ThrowsAsync<BlockException>(async () => await latch.FlushAsync(() => { calls++; return ValueTask.CompletedTask; }));

        Assert.Equal(2, calls);
        Assert.True(latch.Failed);
        Assert.Equal(BlockError.Io, later.Error);
        Assert.Contains("disk.img", later.Message, StringComparison.Ordinal);
        Assert.Contains("Input/output error", later.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(BlockError.InvalidArgument)]
    [InlineData(BlockError.ReadOnly)]
    public async Task ARefusedFlushIsNoFailureOfTheStorageAndLatchesNothing(BlockError refusal)
    {
        var latch = new FlushFailureLatch("disk.img");
        await Assert.ThrowsAsync<BlockException>(async () => await latch.FlushAsync(() => ValueTask.FromException(new BlockException(refusal, "refused"))));
        await latch.FlushAsync(() => ValueTask.CompletedTask);
        Assert.False(latch.Failed);
    }
}
