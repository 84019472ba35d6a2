using Strata.TestKit;

namespace Strata.Block.Tests;

/// <summary>
/// Who may let a request's completion run its caller's code on a storage library's thread
/// (<see cref="InlineCompletion"/>): only the gate's root, only for a read or write the caller
/// allowed and the root gets in one call; and nothing is admitted or started on such a thread.
/// </summary>
public sealed class InlineCompletionTests
{
    private const int Size = 1 << 20;

    [Fact]
    public async Task TheGateOffersTheCallersAllowanceToItsRootForOneReadOrWrite()
    {
        var probe = new ProbeNode(new MemoryNode(Size));
        var gate = new RequestGate(probe);
        var buffer = new byte[4096];

        await Allowed(() => gate.ReadAsync(0, buffer));
        Assert.True(probe.LastOffered, "an allowed read was not offered to the root");
        await Allowed(() => gate.WriteAsync(0, buffer));
        Assert.True(probe.LastOffered, "an allowed write was not offered to the root");

        await gate.ReadAsync(0, buffer);
        Assert.False(probe.LastOffered, "a read its caller did not allow was offered");
        await Allowed(() => gate.FlushAsync());
        Assert.False(probe.LastOffered, "a flush was offered: the gate's flush of former roots follows it");

        // The offer ends with the call that started the request, and the allowance is taken by it.
        Assert.False(InlineCompletion.IsOfferedTo(probe));
        using (InlineCompletion.Allow())
        {
            await gate.ReadAsync(0, buffer);
            await gate.ReadAsync(0, buffer);
        }

        Assert.False(probe.LastOffered, "a second request in one allowance was offered too");
    }

    [Fact]
    public async Task ANodeBelowTheRootAndAPaddedOrSplitRequestAreNeverOffered()
    {
        var below = new ProbeNode(new MemoryNode(Size));
        var gate = new RequestGate(new DelegatingNode(below));
        await Allowed(() => gate.ReadAsync(0, new byte[4096]));
        Assert.Equal(1, below.Calls);
        Assert.False(below.LastOffered, "a layer's request to the node below it was offered");

        var aligned = new ProbeNode(new AlignedNode(new MemoryNode(Size), yieldFirst: false));
        var padded = new RequestGate(aligned);
        await Allowed(() => padded.ReadAsync(100, new byte[4096]));
        Assert.False(aligned.LastOffered, "a padded read was offered");

        var small = new ProbeNode(new MemoryNode(Size), maxTransfer: 8192);
        var split = new RequestGate(small);
        await Allowed(() => split.WriteAsync(0, new byte[3 * 8192]));
        Assert.Equal(3, small.Calls);
        Assert.False(small.LastOffered, "a split write was offered");
    }

    [Fact]
    public async Task ARequestMadeOnACallbackThreadReachesTheNodeFromAnotherThread()
    {
        var probe = new ProbeNode(new MemoryNode(Size));
        var gate = new RequestGate(probe);
        int callbackThread = 0;
        ValueTask read;
        using (InlineCompletion.Running())
        {
            callbackThread = Environment.CurrentManagedThreadId;
            read = gate.ReadAsync(0, new byte[4096]);
        }

        await read;
        Assert.Equal(1, probe.Calls);
        Assert.False(probe.SawRunning, "the node was called while the callback thread was marked");
        Assert.NotEqual(callbackThread, probe.LastThread);
    }

    [Fact]
    public async Task LeaveContinuesOnTheThreadPoolOnlyFromACallbackThread()
    {
        Assert.True(InlineCompletion.Leave().IsCompleted, "Leave waited off a callback thread");
        var left = new TaskCompletionSource<(int Thread, bool Running)>();
        var callback = new Thread(() =>
        {
            using (InlineCompletion.Running())
            {
                _ = ContinueAsync();
            }
        });
        callback.Start();
        var (thread, running) = await left.Task.WaitAsync(TimeSpan.FromSeconds(30));
        callback.Join();
        Assert.NotEqual(callback.ManagedThreadId, thread);
        Assert.False(running, "the code after Leave still ran as on a callback thread");

        async Task ContinueAsync()
        {
            await InlineCompletion.Leave();
            left.SetResult((Environment.CurrentManagedThreadId, InlineCompletion.IsRunning));
        }
    }

    private static async Task Allowed(Func<ValueTask> start)
    {
        ValueTask pending;
        using (InlineCompletion.Allow())
        {
            pending = start();
        }

        await pending;
    }

    /// <summary>Records, for each read or write that reaches it, whether it was offered inline completion and on which thread it came.</summary>
    private sealed class ProbeNode(IBlockNode inner, int maxTransfer = NodeLimits.DefaultMaxTransfer) : DelegatingNode(inner)
    {
        public bool LastOffered { get; private set; }

        public bool SawRunning { get; private set; }

        public int LastThread { get; private set; }

        public int Calls { get; private set; }

        public override NodeLimits Limits => Inner.Limits with { MaxTransfer = maxTransfer };

        public override ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Record();
            return base.ReadAsync(offset, buffer, cancellationToken);
        }

        public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        {
            Record();
            return base.WriteAsync(offset, data, flags, cancellationToken);
        }

        public override ValueTask FlushAsync(CancellationToken cancellationToken = default)
        {
            Record();
            return base.FlushAsync(cancellationToken);
        }

        private void Record()
        {
            Calls++;
            LastOffered = InlineCompletion.IsOfferedTo(this);
            SawRunning |= InlineCompletion.IsRunning;
            LastThread = Environment.CurrentManagedThreadId;
        }
    }
}
