using Strata.TestKit;

namespace Strata.Block.Tests;

public sealed class RequestGateTests
{
    [Fact]
    public async Task ReadBeyondTheEndIsRefusedAsInvalid()
    {
        var gate = new RequestGate(new MemoryNode(8192));
        var e = await Assert.ThrowsAsync<BlockException>(async () => await gate.ReadAsync(8000, new byte[512]));
        Assert.Equal(BlockError.InvalidArgument, e.Error);
    }

    [Fact]
    public async Task OffsetPlusLengthOverflowIsRefused()
    {
        var gate = new RequestGate(new MemoryNode(8192));
        var e = await Assert.ThrowsAsync<BlockException>(async () => await gate.WriteZeroesAsync(long.MaxValue - 10, 100));
        Assert.Equal(BlockError.InvalidArgument, e.Error);
    }

    [Fact]
    public async Task WriteToReadOnlyNodeIsRefused()
    {
        var gate = new RequestGate(new MemoryNode(8192, readOnly: true));
        var e = await Assert.ThrowsAsync<BlockException>(async () => await gate.WriteAsync(0, new byte[512]));
        Assert.Equal(BlockError.ReadOnly, e.Error);
    }

    [Fact]
    public async Task WritesAreSeenByObservers()
    {
        var gate = new RequestGate(new MemoryNode(1 << 20));
        var observer = new RecordingObserver();
        gate.AddObserver(observer);
        await gate.WriteAsync(4096, new byte[100]);
        await gate.DiscardAsync(65536, 4096);
        Assert.Equal([(4096L, 100L), (65536L, 4096L)], observer.Seen);
    }

    [Fact]
    public async Task DrainHoldsNewRequestsUntilReleased()
    {
        var node = new MemoryNode(1 << 20);
        var gate = new RequestGate(node);
        var drain = await gate.DrainAsync();
        var write = gate.WriteAsync(0, new byte[] { 1, 2, 3 }).AsTask();
        await Task.Delay(50);
        Assert.False(write.IsCompleted);
        Assert.Equal(0, node.ToArray()[0]);
        drain.Dispose();
        await write;
        Assert.Equal(1, node.ToArray()[0]);
    }

    [Fact]
    public async Task TheEndOfAHoldReportsHowManyRequestsWaitedAndTheLongestWait()
    {
        var gate = new RequestGate(new MemoryNode(1 << 20));
        var reports = new List<(int Count, TimeSpan Longest)>();
        gate.HoldEnded += (count, longest) =>
        {
            lock (reports)
            {
                reports.Add((count, longest));
            }
        };
        var drain = await gate.DrainAsync();
        var held = new[] { gate.WriteAsync(0, new byte[512]).AsTask(), gate.ReadAsync(512, new byte[512]).AsTask() };
        await Task.Delay(30);
        drain.Dispose();
        await Task.WhenAll(held);

        // A drain no request waited for reports nothing.
        (await gate.DrainAsync()).Dispose();
        await gate.WriteAsync(0, new byte[512]);

        var report = Assert.Single(reports);
        Assert.Equal(2, report.Count);
        Assert.True(report.Longest > TimeSpan.Zero);
    }

    [Fact]
    public async Task DrainWaitsForRequestsInFlight()
    {
        var slow = new SlowNode(new MemoryNode(1 << 20));
        var gate = new RequestGate(slow);
        var write = gate.WriteAsync(0, new byte[512]).AsTask();
        await slow.Started.Task;
        var drainTask = gate.DrainAsync();
        await Task.Delay(30);
        Assert.False(drainTask.IsCompleted);
        slow.Release.SetResult();
        await write;
        using var drain = await drainTask;
        Assert.Equal(0, gate.InFlight);
    }

    [Fact]
    public async Task RootCanOnlyBeReplacedUnderDrain()
    {
        var gate = new RequestGate(new MemoryNode(4096));
        var other = new MemoryNode(4096);
        var foreign = await new RequestGate(new MemoryNode(4096)).DrainAsync();
        Assert.Throws<InvalidOperationException>(() => gate.ReplaceRoot(other, foreign));
        using (var drain = await gate.DrainAsync())
        {
            gate.ReplaceRoot(other, drain);
        }

        Assert.Same(other, gate.Root);
    }

    [Fact]
    public async Task LargeReadsAreSplitAtTheTransferLimit()
    {
        var node = new CountingNode(new MemoryNode(80L << 20));
        var gate = new RequestGate(node);
        await gate.ReadAsync(0, new byte[70 << 20]);
        Assert.Equal(3, node.Reads);
    }

    private sealed class RecordingObserver : IWriteObserver
    {
        public List<(long, long)> Seen { get; } = [];

        public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public void OnWritten(long offset, long length) => Seen.Add((offset, length));
    }

    private sealed class SlowNode(IBlockNode inner) : DelegatingNode(inner)
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        {
            Started.TrySetResult();
            await Release.Task;
            await base.WriteAsync(offset, data, flags, cancellationToken);
        }
    }

    private sealed class CountingNode(IBlockNode inner) : DelegatingNode(inner)
    {
        public int Reads { get; private set; }

        public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Reads++;
            return base.ReadAsync(offset, buffer, cancellationToken);
        }
    }
}
