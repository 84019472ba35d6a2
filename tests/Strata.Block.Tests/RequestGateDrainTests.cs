using Strata.Block.Live;
using Strata.TestKit;

namespace Strata.Block.Tests;

/// <summary>Drains are bounded: one hung request refuses a graph change, it never blocks it forever.</summary>
public sealed class RequestGateDrainTests
{
    private const int Size = 1 << 20;

    /// <summary>Far beyond any deadline the tests set: reached only when a wait that should end never does.</summary>
    private static readonly TimeSpan Never = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ADrainThatOutlivesItsTimeoutFailsAndLetsTheHeldRequestsIn()
    {
        var node = new HangingNode(new MemoryNode(Size)) { HangAt = 0 };
        var gate = new RequestGate(node);
        var hung = gate.WriteAsync(0, new byte[512]).AsTask();
        await node.Entered.WaitAsync(Never);

        var drain = gate.DrainAsync(TimeSpan.FromMilliseconds(300));
        var heldWrite = WhenStarted(() => gate.WriteAsync(8192, new byte[] { 7 }));
        var e = await Assert.ThrowsAsync<BlockException>(() => drain.WaitAsync(Never));
        Assert.Equal(BlockError.TimedOut, e.Error);
        Assert.Contains("1 request still in flight", e.Message);

        await heldWrite.WaitAsync(Never);
        var back = new byte[1];
        await gate.ReadAsync(8192, back).AsTask().WaitAsync(Never);
        Assert.Equal(7, back[0]);
        Assert.False(hung.IsCompleted);

        node.Release();
        await hung.WaitAsync(Never);
        using (await gate.DrainAsync(TimeSpan.FromMilliseconds(300)))
        {
            Assert.Equal(0, gate.InFlight);
        }
    }

    [Fact]
    public async Task ASnapshotOverAHungRequestIsRefusedAtTheGatesDeadlineAndChangesNothing()
    {
        var node = new HangingNode(new MemoryNode(Size)) { HangAt = 4096, IgnoresCancellation = true };
        var gate = new RequestGate(node) { DrainTimeout = TimeSpan.FromMilliseconds(300) };
        var hung = gate.ReadAsync(0, new byte[8192]).AsTask();
        await node.Entered.WaitAsync(Never);

        bool discarded = false;
        await using (var snapshot = new LiveSnapshot())
        {
            snapshot.Add(new SnapshotSwitch(gate, old => new MemoryOverlayNode(old, old.Size), () =>
            {
                discarded = true;
                return ValueTask.CompletedTask;
            }));
            var switching = snapshot.SwitchAsync();
            var other = WhenStarted(() => gate.WriteAsync(65536, new byte[] { 1, 2, 3 }));
            var e = await Assert.ThrowsAsync<BlockException>(() => switching.WaitAsync(Never));
            Assert.Equal(BlockError.TimedOut, e.Error);
            await other.WaitAsync(Never);
        }

        Assert.True(discarded, "the refused snapshot's overlay was not discarded");
        Assert.Same(node, gate.Root);
        await gate.WriteAsync(131072, new byte[] { 9 }).AsTask().WaitAsync(Never);
        Assert.Equal(1, gate.InFlight);

        node.Release();
        await hung.WaitAsync(Never);
        await using var second = new LiveSnapshot();
        second.Add(new SnapshotSwitch(gate, old => new MemoryOverlayNode(old, old.Size)));
        await second.SwitchAsync().WaitAsync(Never);
        Assert.NotSame(node, gate.Root);
    }

    [Fact]
    public async Task ACancelledDrainLetsTheHeldRequestsIn()
    {
        var node = new HangingNode(new MemoryNode(Size)) { HangAt = 0 };
        var gate = new RequestGate(node);
        var hung = gate.WriteAsync(0, new byte[512]).AsTask();
        await node.Entered.WaitAsync(Never);
        using var cancel = new CancellationTokenSource();
        var drain = gate.DrainAsync(Timeout.InfiniteTimeSpan, cancel.Token);
        var held = WhenStarted(() => gate.WriteAsync(8192, new byte[1]));
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => drain.WaitAsync(Never));
        await held.WaitAsync(Never);
        node.Release();
        await hung.WaitAsync(Never);
    }

    [Fact]
    public void ADrainTimeoutIsPositiveOrInfinite()
    {
        var gate = new RequestGate(new MemoryNode(Size));
        Assert.Equal(RequestGate.DefaultDrainTimeout, gate.DrainTimeout);
        Assert.Throws<ArgumentOutOfRangeException>(() => gate.DrainTimeout = TimeSpan.Zero);
        gate.DrainTimeout = Timeout.InfiniteTimeSpan;
        Assert.Equal(Timeout.InfiniteTimeSpan, gate.DrainTimeout);
    }

    /// <summary>Starts a request after a short pause, so that it arrives while the drain holds the gate.</summary>
    private static async Task WhenStarted(Func<ValueTask> request)
    {
        await Task.Delay(50);
        await request();
    }
}
