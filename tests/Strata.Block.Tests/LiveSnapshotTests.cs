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
        await LiveSnapshot.SwitchAsync([Overlay(gateA), Overlay(gateB)]);
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
        await Assert.ThrowsAsync<BlockException>(() => LiveSnapshot.SwitchAsync([Overlay(gateA), failing]));
        Assert.Same(rootA, gateA.Root);
        await gateA.WriteAsync(0, new byte[] { 1 });
    }

    [Fact]
    public async Task TheSameDriveTwiceIsRefused()
    {
        var gate = new RequestGate(new MemoryNode(4096));
        await Assert.ThrowsAsync<BlockException>(() => LiveSnapshot.SwitchAsync([Overlay(gate), Overlay(gate)]));
    }

    private static Task Snapshot(RequestGate gate) => LiveSnapshot.SwitchAsync([Overlay(gate)]);

    private static SnapshotSwitch Overlay(RequestGate gate) => new(gate, old => new MemoryOverlayNode(old, old.Size));
}
