using System.Buffers.Binary;
using Strata.Block.Live;
using Strata.TestKit;

namespace Strata.Block.Tests;

public sealed class LiveSnapshotTests
{
    private const int DiskSize = 1 << 20;

    [Fact]
    public async Task AfterTheSwitchTheOldRootNeverChangesWhileTheGuestKeepsWriting()
    {
        const int seed = 21;
        var baseNode = new MemoryNode(DiskSize);
        var gate = new RequestGate(baseNode);
        var random = new Random(seed);
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            var data = new byte[8192];
            for (int i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
            {
                random.NextBytes(data);
                await gate.WriteAsync(random.Next(DiskSize - data.Length), data, WriteFlags.None, CancellationToken.None);
            }
        });
        await Task.Delay(20);
        await Snapshot(gate);
        var frozen = baseNode.ToArray();
        await Task.Delay(50);
        await stop.CancelAsync();
        await writer;
        Assert.True(frozen.AsSpan().SequenceEqual(baseNode.ToArray()), $"the snapshot changed after the switch (seed {seed})");
        Assert.IsType<MemoryOverlayNode>(gate.Root);
    }

    [Fact]
    public async Task TwoDrivesSwitchAtOnePointInTime()
    {
        var a = new MemoryNode(4096);
        var b = new MemoryNode(4096);
        var gateA = new RequestGate(a);
        var gateB = new RequestGate(b);
        using var stop = new CancellationTokenSource();

        // The guest writes counter n to A, then n to B: any consistent cut has B <= A <= B + 1.
        var writer = Task.Run(async () =>
        {
            var buffer = new byte[8];
            for (long n = 1; n < 1_000_000 && !stop.IsCancellationRequested; n++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(buffer, n);
                await gateA.WriteAsync(0, buffer, WriteFlags.None, CancellationToken.None);
                await gateB.WriteAsync(0, buffer, WriteFlags.None, CancellationToken.None);
            }
        });
        await Task.Delay(20);
        await SwitchAsync(Overlay(gateA), Overlay(gateB));
        await stop.CancelAsync();
        await writer;

        long na = BinaryPrimitives.ReadInt64LittleEndian(a.ToArray());
        long nb = BinaryPrimitives.ReadInt64LittleEndian(b.ToArray());
        Assert.True(nb <= na && na <= nb + 1, $"snapshot is not one point in time: A={na} B={nb}");
        Assert.True(na > 0);
    }

    [Fact]
    public async Task AFailingSwitchChangesNoDrive()
    {
        var gateA = new RequestGate(new MemoryNode(4096));
        var gateB = new RequestGate(new MemoryNode(4096));
        var rootA = gateA.Root;
        var failing = new SnapshotSwitch(gateB, _ => throw BlockException.Invalid("overlay is smaller than the disk"));
        await Assert.ThrowsAsync<BlockException>(() => SwitchAsync(Overlay(gateA), failing));
        Assert.Same(rootA, gateA.Root);
        await gateA.WriteAsync(0, new byte[] { 1 });
    }

    [Fact]
    public async Task TheSameDriveTwiceIsRefused()
    {
        var gate = new RequestGate(new MemoryNode(4096));
        await Assert.ThrowsAsync<BlockException>(() => SwitchAsync(Overlay(gate), Overlay(gate)));
    }

    [Fact]
    public async Task TheOldRootIsFlushedBeforeTheSnapshotReturns()
    {
        var old = new FlushCountingNode(new MemoryNode(4096));
        var gate = new RequestGate(old);
        await gate.WriteAsync(0, new byte[] { 7 });
        await Snapshot(gate);
        Assert.Equal(1, old.Flushes);

        // Once flushed, the old root is no longer part of the guest's flushes.
        await gate.FlushAsync();
        Assert.Equal(1, old.Flushes);
    }

    [Fact]
    public async Task AGuestFlushRightAfterTheSwitchAlsoFlushesTheOldRoot()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var old = new FlushCountingNode(new MemoryNode(4096), release.Task);
        var gate = new RequestGate(old);
        await gate.WriteAsync(0, new byte[] { 7 });
        var snapshot = Snapshot(gate);
        while (old.Flushes == 0)
        {
            await Task.Delay(1);
        }

        // The switch is done and the snapshot's own flush of the old root has not finished: a guest
        // flush now must not return before the old root is flushed.
        Assert.IsType<MemoryOverlayNode>(gate.Root);
        var guestFlush = gate.FlushAsync().AsTask();
        await Task.Delay(20);
        Assert.False(guestFlush.IsCompleted, "a guest flush returned before the write it covers reached stable storage");
        release.SetResult();
        await guestFlush;
        await snapshot;
        Assert.Equal(2, old.Flushes);
    }

    [Fact]
    public async Task AFailedFlushOfTheOldRootAfterTheSwitchLeavesTheOverlayLiveUntilTheNextGuestFlushFlushesIt()
    {
        var old = new FaultInjectingNode(new MemoryNode(4096));
        var gate = new RequestGate(old);
        await gate.WriteAsync(0, new byte[] { 7 });

        // The old root refuses the snapshot's flush: the switch has happened by then and must stand.
        old.CrashAfter(0);
        var result = await Snapshot(gate);
        var unflushed = Assert.Single(result.Unflushed);
        Assert.Same(old, unflushed.Node);
        Assert.Contains("injected crash", unflushed.Reason, StringComparison.Ordinal);
        var overlay = Assert.IsType<MemoryOverlayNode>(gate.Root);
        await gate.WriteAsync(1, new byte[] { 8 });
        var seen = new byte[2];
        await gate.ReadAsync(0, seen);
        Assert.Equal(new byte[] { 7, 8 }, seen);

        // The old root stays in every guest flush until one of its flushes succeeds, then leaves them.
        old.CrashAfter(long.MaxValue);
        long before = old.WritesSeen;
        await gate.FlushAsync();
        Assert.Equal(before + 1, old.WritesSeen);
        await gate.FlushAsync();
        Assert.Equal(before + 1, old.WritesSeen);
        Assert.Same(overlay, gate.Root);
    }

    [Fact]
    public async Task AFailureBeforeTheSwitchDiscardsEveryPreparedOverlay()
    {
        var gateA = new RequestGate(new MemoryNode(4096));
        var gateB = new RequestGate(new MemoryNode(4096));
        int discarded = 0;
        ValueTask Discard()
        {
            discarded++;
            return ValueTask.CompletedTask;
        }

        var good = new SnapshotSwitch(gateA, old => new MemoryOverlayNode(old, old.Size), Discard);
        var failing = new SnapshotSwitch(gateB, _ => throw BlockException.Invalid("overlay is smaller than the disk"), Discard);
        await Assert.ThrowsAsync<BlockException>(() => SwitchAsync(good, failing));
        Assert.Equal(2, discarded);
    }

    [Fact]
    public async Task NothingIsDiscardedOnceTheSwitchHappened()
    {
        var old = new FaultInjectingNode(new MemoryNode(4096));
        var gate = new RequestGate(old);
        old.CrashAfter(0);
        bool discarded = false;
        await SwitchAsync(new SnapshotSwitch(gate, o => new MemoryOverlayNode(o, o.Size), () =>
        {
            discarded = true;
            return ValueTask.CompletedTask;
        }));
        Assert.False(discarded, "an overlay that is the drive's live root was discarded");
        Assert.IsType<MemoryOverlayNode>(gate.Root);
    }

    [Fact]
    public async Task ASnapshotSwitchesOnlyOnce()
    {
        var gate = new RequestGate(new MemoryNode(4096));
        await using var snapshot = new LiveSnapshot();
        snapshot.Add(Overlay(gate));
        await snapshot.SwitchAsync();
        await Assert.ThrowsAsync<InvalidOperationException>(() => snapshot.SwitchAsync());
        Assert.Throws<InvalidOperationException>(() => snapshot.Add(Overlay(gate)));
    }

    private static Task<SnapshotResult> Snapshot(RequestGate gate) => SwitchAsync(Overlay(gate));

    private static async Task<SnapshotResult> SwitchAsync(params SnapshotSwitch[] switches)
    {
        await using var snapshot = new LiveSnapshot();
        foreach (var s in switches)
        {
            snapshot.Add(s);
        }

        return await snapshot.SwitchAsync();
    }

    private static SnapshotSwitch Overlay(RequestGate gate) => new(gate, old => new MemoryOverlayNode(old, old.Size));

    /// <summary>Counts flushes; each one waits for <paramref name="gate"/> (if given) before it completes.</summary>
    private sealed class FlushCountingNode(IBlockNode inner, Task? gate = null) : DelegatingNode(inner)
    {
        private int _flushes;

        public int Flushes => Volatile.Read(ref _flushes);

        public override async ValueTask FlushAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _flushes);
            if (gate is not null)
            {
                await gate;
            }

            await Inner.FlushAsync(cancellationToken);
        }
    }
}
