using Strata.Block.Jobs;
using Strata.Block.Live;
using Strata.TestKit;

namespace Strata.Block.Tests;

public sealed class CommitJobTests
{
    private const int DiskSize = 4 << 20;

    [Fact]
    public async Task ActiveMergeCopiesTheOverlayIntoTheBaseAndSwitchesTheDriveToIt()
    {
        var (baseNode, overlay, gate, model) = await SnapshotWithWrites(seed: 11);
        using var job = new CommitJob("merge0", gate, overlay, baseNode, new CommitJobOptions { AutoComplete = true });
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(job.Error);
        Assert.Same(baseNode, gate.Root);
        Assert.Equal(model, baseNode.ToArray());
        Assert.Equal(job.TotalProgress, job.CurrentProgress);
        Assert.Equal((long)overlay.AllocatedPages * 4096, job.TotalProgress);
    }

    [Fact]
    public async Task ActiveMergeConvergesWhileTheGuestKeepsWriting()
    {
        const int seed = 12;
        var (baseNode, overlay, gate, model) = await SnapshotWithWrites(seed);
        using var job = new CommitJob("merge0", gate, overlay, baseNode, new CommitJobOptions { AutoComplete = true, ChunkSize = 64 << 10 });
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() => WriteRandomly(gate, model, seed + 1, maxOps: 200_000, stop.Token));
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        await stop.CancelAsync();
        await writer;

        Assert.Null(job.Error);
        Assert.Same(baseNode, gate.Root);
        Assert.True(model.AsSpan().SequenceEqual(baseNode.ToArray()), $"base differs from the model (seed {seed})");
    }

    [Fact]
    public async Task CancelledMergeLeavesTheDriveOnTheOverlayWithNothingLost()
    {
        const int seed = 13;
        var (baseNode, overlay, gate, model) = await SnapshotWithWrites(seed);
        using var job = new CommitJob("merge0", gate, overlay, baseNode, new CommitJobOptions { Speed = 64 << 10, ChunkSize = 4096 });
        job.Start();
        await WriteRandomly(gate, model, seed + 1, maxOps: 300, CancellationToken.None);
        job.Cancel();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(job.Error);
        Assert.Same(overlay, gate.Root);
        var seen = new byte[DiskSize];
        await gate.ReadAsync(0, seen);
        Assert.True(model.AsSpan().SequenceEqual(seen), $"the drive does not read as the model (seed {seed})");
    }

    [Fact]
    public async Task ActiveMergeWithoutAutoCompleteWaitsReadyUntilCompleted()
    {
        var (baseNode, overlay, gate, _) = await SnapshotWithWrites(seed: 14);
        using var job = new CommitJob("merge0", gate, overlay, baseNode);
        var ready = new TaskCompletionSource();
        job.StatusChanged += (_, e) =>
        {
            if (e.Status == JobStatus.Ready)
            {
                ready.TrySetResult();
            }
        };
        job.Start();
        await ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.IsType<MirrorNode>(gate.Root);
        job.Complete();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Same(baseNode, gate.Root);
    }

    [Fact]
    public async Task MergeOfAMiddleLayerLeavesTheTopInPlace()
    {
        var baseNode = new MemoryNode(DiskSize);
        var model = new byte[DiskSize];
        var middle = new MemoryOverlayNode(baseNode, DiskSize);
        var top = new MemoryOverlayNode(middle, DiskSize);
        var gate = new RequestGate(top);
        await WriteThrough(middle, model, 0, 100_000, 7);
        await WriteThrough(top, model, 50_000, 20_000, 9);
        bool relinked = false;
        using var job = new CommitJob("merge1", gate, middle, baseNode, new CommitJobOptions
        {
            OnCommit = _ =>
            {
                top.Backing = baseNode;
                relinked = true;
                return Task.CompletedTask;
            },
        });
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(job.Error);
        Assert.True(relinked);
        Assert.Same(top, gate.Root);
        var seen = new byte[DiskSize];
        await gate.ReadAsync(0, seen);
        Assert.Equal(model, seen);
    }

    [Fact]
    public void BaseThatIsNotBelowTheTopIsRefused()
    {
        var gate = new RequestGate(new MemoryNode(DiskSize));
        var e = Assert.Throws<BlockException>(() => new CommitJob("x", gate, gate.Root, new MemoryNode(DiskSize)));
        Assert.Equal(BlockError.InvalidArgument, e.Error);
    }

    [Fact]
    public async Task AFailedWriteToTheBaseFailsTheMergeWithAnErrorEventAndLosesNothing()
    {
        const int seed = 17;
        var memory = new MemoryNode(DiskSize);
        var failing = new FaultInjectingNode(memory, ownsInner: false);
        var (overlay, gate, model) = await SnapshotOver(failing, seed);
        failing.CrashAfter(3);
        using var job = new CommitJob("merge0", gate, overlay, failing, new CommitJobOptions { AutoComplete = true, ChunkSize = 64 << 10 });
        var errors = new List<JobIoErrorEventArgs>();
        job.IoError += (_, e) =>
        {
            lock (errors)
            {
                errors.Add(e);
            }
        };
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.NotNull(job.Error);
        // Copiers that fail at the same moment each report their error.
        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.True(e.Write && !e.Stopped));
        Assert.Same(overlay, gate.Root);
        var seen = new byte[DiskSize];
        await gate.ReadAsync(0, seen);
        Assert.True(model.AsSpan().SequenceEqual(seen), $"the drive does not read as the model (seed {seed})");
    }

    [Fact]
    public async Task WithPolicyStopAFailedWritePausesTheMergeAndResumeRetriesIt()
    {
        const int seed = 18;
        var memory = new MemoryNode(DiskSize);
        var failing = new FaultInjectingNode(memory, ownsInner: false);
        var (overlay, gate, model) = await SnapshotOver(failing, seed);
        failing.CrashAfter(3);
        using var job = new CommitJob("merge0", gate, overlay, failing,
            new CommitJobOptions { AutoComplete = true, ChunkSize = 64 << 10, OnError = IoErrorPolicy.Stop });
        var stopped = new TaskCompletionSource<JobIoErrorEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        job.IoError += (_, e) => stopped.TrySetResult(e);
        job.Start();
        var error = await stopped.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(error.Stopped);
        while (job.Status != JobStatus.Paused)
        {
            await Task.Delay(1);
        }

        Assert.True(job.IoFailed);
        Assert.False(job.Completion.IsCompleted);

        // The disk is repaired; resuming retries the failed chunk and the merge finishes.
        failing.CrashAfter(long.MaxValue);
        job.Resume();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Null(job.Error);
        Assert.False(job.IoFailed);
        Assert.Same(failing, gate.Root);
        Assert.True(model.AsSpan().SequenceEqual(memory.ToArray()), $"the base differs from the model (seed {seed})");
    }

    private static async Task<(MemoryNode Base, MemoryOverlayNode Overlay, RequestGate Gate, byte[] Model)> SnapshotWithWrites(int seed)
    {
        var baseNode = new MemoryNode(DiskSize);
        var (overlay, gate, model) = await SnapshotOver(baseNode, seed);
        return (baseNode, overlay, gate, model);
    }

    /// <summary>Seeded writes to <paramref name="baseNode"/>, a live switch to an overlay over it, then more writes.</summary>
    private static async Task<(MemoryOverlayNode Overlay, RequestGate Gate, byte[] Model)> SnapshotOver(IBlockNode baseNode, int seed)
    {
        var model = new byte[DiskSize];
        var gate = new RequestGate(baseNode);
        await WriteRandomly(gate, model, seed, maxOps: 200, CancellationToken.None);
        var overlay = new MemoryOverlayNode(baseNode, DiskSize);
        using (var drain = await gate.DrainAsync())
        {
            gate.ReplaceRoot(overlay, drain);
        }

        await WriteRandomly(gate, model, seed * 31, maxOps: 200, CancellationToken.None);
        return (overlay, gate, model);
    }

    private static async Task WriteThrough(IBlockNode node, byte[] model, int offset, int length, byte value)
    {
        var data = Enumerable.Repeat(value, length).ToArray();
        await node.WriteAsync(offset, data);
        data.CopyTo(model, offset);
    }

    /// <summary>Seeded random writes, zeroes and discards through the gate, mirrored into the model.</summary>
    private static async Task WriteRandomly(RequestGate gate, byte[] model, int seed, int maxOps, CancellationToken stop)
    {
        var random = new Random(seed);
        for (int i = 0; i < maxOps && !stop.IsCancellationRequested; i++)
        {
            int offset = random.Next(DiskSize - 1);
            int length = Math.Min(random.Next(1, 96 << 10), DiskSize - offset);
            switch (random.Next(10))
            {
                case 0:
                    await gate.WriteZeroesAsync(offset, length, ZeroFlags.None, CancellationToken.None);
                    model.AsSpan(offset, length).Clear();
                    break;
                case 1:
                    await gate.DiscardAsync(offset, length, CancellationToken.None);
                    // Discard leaves unspecified content: learn what the disk now shows.
                    var now = new byte[length];
                    await gate.ReadAsync(offset, now, CancellationToken.None);
                    now.CopyTo(model, offset);
                    break;
                default:
                    var data = new byte[length];
                    random.NextBytes(data);
                    await gate.WriteAsync(offset, data, WriteFlags.None, CancellationToken.None);
                    data.CopyTo(model, offset);
                    break;
            }
        }
    }
}
