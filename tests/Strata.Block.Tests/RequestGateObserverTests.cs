using Strata.TestKit;

namespace Strata.Block.Tests;

public sealed class RequestGateObserverTests
{
    [Fact]
    public async Task AWriteThatFailsIsStillMarked()
    {
        var gate = new RequestGate(new FailingWrites(new MemoryNode(1 << 20)));
        var observer = new Observer();
        await AddAsync(gate, observer);

        await Assert.ThrowsAsync<BlockException>(async () => await gate.WriteAsync(4096, new byte[512]));
        await Assert.ThrowsAsync<BlockException>(async () => await gate.WriteZeroesAsync(8192, 512));

        Assert.Equal([(4096L, 512L), (8192L, 512L)], observer.Before);
        Assert.Equal([(4096L, 512L), (8192L, 512L)], observer.Written);
    }

    [Fact]
    public async Task TheMarkHappensAfterTheNodeHasTheData()
    {
        var node = new MemoryNode(1 << 20);
        var gate = new RequestGate(node);
        var seenAtMark = new List<byte>();
        var seenBefore = new List<byte>();
        await AddAsync(gate, new Observer
        {
            OnBefore = (offset, _) => seenBefore.Add(node.ToArray()[offset]),
            OnAfter = (offset, _) => seenAtMark.Add(node.ToArray()[offset]),
        });

        await gate.WriteAsync(100, new byte[] { 7 });
        await gate.WriteZeroesAsync(100, 1);

        Assert.Equal([0, 7], seenBefore);
        Assert.Equal([7, 0], seenAtMark);
    }

    [Fact]
    public async Task ADrainCompletesOnlyAfterTheMark()
    {
        var gate = new RequestGate(new MemoryNode(1 << 20));
        using var markMayFinish = new ManualResetEventSlim();
        var marking = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bool marked = false;
        await AddAsync(gate, new Observer
        {
            OnAfter = (_, _) =>
            {
                marking.TrySetResult();
                markMayFinish.Wait(TimeSpan.FromSeconds(30));
                marked = true;
            },
        });

        var write = Task.Run(async () => await gate.WriteAsync(0, new byte[512]));
        await marking.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var drain = gate.DrainAsync();
        await Task.Delay(30);
        Assert.False(drain.IsCompleted);

        markMayFinish.Set();
        using var held = await drain;
        Assert.True(marked);
        await write;
    }

    [Fact]
    public async Task AFailedBeforeWriteFailsTheRequestAndTheNodeNeverSeesIt()
    {
        var node = new MemoryNode(1 << 20);
        var gate = new RequestGate(node);
        await AddAsync(gate, new Observer { OnBefore = (_, _) => throw new IOException("intent map full") });

        var e = await Assert.ThrowsAsync<IOException>(async () => await gate.WriteAsync(0, new byte[] { 9 }));

        Assert.Equal("intent map full", e.Message);
        Assert.Equal(0, node.ToArray()[0]);
        Assert.Equal(0, gate.InFlight);
    }

    [Fact]
    public async Task ObserversSeeWritesWriteZeroesAndDiscardsButNotReadsFlushesOrEmptyWrites()
    {
        var gate = new RequestGate(new MemoryNode(1 << 20));
        var observer = new Observer();
        await AddAsync(gate, observer);

        await gate.WriteAsync(0, new byte[10]);
        await gate.WriteZeroesAsync(4096, 100);
        await gate.DiscardAsync(65536, 4096);
        await gate.WriteAsync(512, ReadOnlyMemory<byte>.Empty);
        await gate.ReadAsync(0, new byte[512]);
        await gate.FlushAsync();

        Assert.Equal([(0L, 10L), (4096L, 100L), (65536L, 4096L)], observer.Written);
        Assert.Equal(observer.Written, observer.Before);
    }

    [Fact]
    public async Task ARemovedObserverSeesNothingMore()
    {
        var gate = new RequestGate(new MemoryNode(1 << 20));
        var observer = new Observer();
        await AddAsync(gate, observer);
        await gate.WriteAsync(0, new byte[1]);
        using (var drain = await gate.DrainAsync())
        {
            Assert.True(gate.RemoveObserver(observer));
            Assert.False(gate.RemoveObserver(observer));
        }

        await gate.WriteAsync(0, new byte[1]);
        Assert.Single(observer.Written);
    }

    private static async Task AddAsync(RequestGate gate, IWriteObserver observer)
    {
        using var drain = await gate.DrainAsync();
        gate.AddObserver(observer);
    }

    private sealed class Observer : IWriteObserver
    {
        public List<(long, long)> Before { get; } = [];

        public List<(long, long)> Written { get; } = [];

        public Action<long, long>? OnBefore { get; init; }

        public Action<long, long>? OnAfter { get; init; }

        public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken)
        {
            OnBefore?.Invoke(offset, length);
            Before.Add((offset, length));
            return ValueTask.CompletedTask;
        }

        public void OnWritten(long offset, long length)
        {
            OnAfter?.Invoke(offset, length);
            Written.Add((offset, length));
        }
    }

    private sealed class FailingWrites(IBlockNode inner) : DelegatingNode(inner)
    {
        public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
            => throw new BlockException(BlockError.Io, "the disk failed");

        public override ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
            => throw new BlockException(BlockError.Io, "the disk failed");
    }
}
