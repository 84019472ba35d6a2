using Strata.TestKit;

namespace Strata.Block.Tests;

/// <summary>
/// The error policy of guest requests (werror=/rerror=): report fails the request and says so; stop
/// holds it unanswered, out of the count in flight, until the gate is resumed, then runs it again.
/// </summary>
public sealed class RequestGateErrorPolicyTests
{
    private const int Size = 1 << 20;

    /// <summary>Far beyond any wait the tests expect to end: reached only when one never does.</summary>
    private static readonly TimeSpan Never = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AFailedWriteUnderReportFailsAndSaysSoOnce()
    {
        var (gate, node, errors) = NewGate(IoErrorPolicy.Report, IoErrorPolicy.Report);
        node.CrashAfter(0);

        var e = await Assert.ThrowsAsync<BlockException>(() => gate.WriteAsync(0, new byte[512]).AsTask());

        Assert.Equal(BlockError.Io, e.Error);
        var error = Assert.Single(errors);
        Assert.True(error.Write);
        Assert.False(error.Stopped);
        Assert.False(error.NoSpace);
        Assert.Equal(IoStatus.Ok, gate.IoStatus);
        Assert.False(gate.IsStoppedByError);
    }

    [Fact]
    public async Task AFailedWriteUnderStopIsHeldUnansweredUntilTheGateContinuesAndThenRunsAgain()
    {
        var (gate, node, errors) = NewGate(IoErrorPolicy.Report, IoErrorPolicy.Stop);
        var stopped = StoppedSignal(gate);
        node.CrashAfter(0);

        var write = gate.WriteAsync(4096, Filled(512, 7)).AsTask();
        await stopped.Task.WaitAsync(Never);

        Assert.False(write.IsCompleted);
        Assert.True(gate.IsStoppedByError);
        Assert.Equal(IoStatus.Failed, gate.IoStatus);
        Assert.Equal(0, gate.InFlight);
        Assert.True(Assert.Single(errors).Stopped);

        node.CrashAfter(long.MaxValue);
        Assert.True(gate.ContinueAfterError());
        await write.WaitAsync(Never);

        Assert.Equal(IoStatus.Ok, gate.IoStatus);
        var back = new byte[512];
        await gate.ReadAsync(4096, back);
        Assert.Equal(Filled(512, 7), back);
    }

    [Fact]
    public async Task AHeldRequestThatFailsAgainAfterContinueStopsTheGateAgain()
    {
        var (gate, node, errors) = NewGate(IoErrorPolicy.Report, IoErrorPolicy.Stop);
        var stopped = StoppedSignal(gate);
        node.CrashAfter(0);
        var flush = gate.FlushAsync().AsTask();
        await stopped.Task.WaitAsync(Never);

        stopped = StoppedSignal(gate);
        Assert.True(gate.ContinueAfterError());
        await stopped.Task.WaitAsync(Never);

        Assert.False(flush.IsCompleted);
        Assert.True(gate.IsStoppedByError);
        Assert.Equal(2, errors.Count(e => e.Stopped && e.Write));

        node.CrashAfter(long.MaxValue);
        gate.ContinueAfterError();
        await flush.WaitAsync(Never);
    }

    [Fact]
    public async Task EnospcStopsOnAFullDiskAndReportsAnyOtherFailure()
    {
        var (gate, node, errors) = NewGate(IoErrorPolicy.Report, IoErrorPolicy.StopOnNoSpace);
        node.CrashAfter(0);
        await Assert.ThrowsAsync<BlockException>(() => gate.WriteZeroesAsync(0, 4096).AsTask());
        Assert.False(Assert.Single(errors).Stopped);

        var stopped = StoppedSignal(gate);
        node.Error = BlockError.NoSpace;
        var write = gate.WriteAsync(0, new byte[512]).AsTask();
        await stopped.Task.WaitAsync(Never);

        Assert.Equal(IoStatus.NoSpace, gate.IoStatus);
        Assert.True(errors[^1].NoSpace);
        node.CrashAfter(long.MaxValue);
        gate.ContinueAfterError();
        await write.WaitAsync(Never);
    }

    [Fact]
    public async Task AFailedReadUnderStopIsHeldAndRunsAgain()
    {
        var (gate, node, errors) = NewGate(IoErrorPolicy.Stop, IoErrorPolicy.Report);
        await gate.WriteAsync(0, Filled(512, 9));
        node.FailReads = true;
        node.CrashAfter(-1);
        var stopped = StoppedSignal(gate);

        var buffer = new byte[512];
        var read = gate.ReadAsync(0, buffer).AsTask();
        await stopped.Task.WaitAsync(Never);
        Assert.False(Assert.Single(errors).Write);

        node.CrashAfter(long.MaxValue);
        gate.ContinueAfterError();
        await read.WaitAsync(Never);
        Assert.Equal(Filled(512, 9), buffer);
    }

    [Fact]
    public async Task ARefusalIsNeverHeldWhateverThePolicy()
    {
        var (gate, node, errors) = NewGate(IoErrorPolicy.Stop, IoErrorPolicy.Stop);
        node.Error = BlockError.NotSupported;
        node.CrashAfter(0);

        var e = await Assert.ThrowsAsync<BlockException>(() => gate.DiscardAsync(0, 4096).AsTask().WaitAsync(Never));

        Assert.Equal(BlockError.NotSupported, e.Error);
        Assert.Empty(errors);
        Assert.False(gate.IsStoppedByError);
    }

    [Fact]
    public async Task AHeldRequestWhoseClientWentAwayEndsAndLeavesNothingInFlight()
    {
        var (gate, node, _) = NewGate(IoErrorPolicy.Report, IoErrorPolicy.Stop);
        var stopped = StoppedSignal(gate);
        node.CrashAfter(0);
        using var client = new CancellationTokenSource();
        var write = gate.WriteAsync(0, new byte[512], cancellationToken: client.Token).AsTask();
        await stopped.Task.WaitAsync(Never);

        await client.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => write.WaitAsync(Never));
        Assert.Equal(0, gate.InFlight);
        Assert.True(gate.IsStoppedByError);
    }

    [Fact]
    public async Task AGateStoppedByAFailureStillDrainsAndItsHeldRequestRunsAfterTheDrainAndTheContinue()
    {
        var (gate, node, _) = NewGate(IoErrorPolicy.Report, IoErrorPolicy.Stop);
        var stopped = StoppedSignal(gate);
        node.CrashAfter(0);
        var write = gate.WriteAsync(0, Filled(512, 3)).AsTask();
        await stopped.Task.WaitAsync(Never);

        var drain = await gate.DrainAsync(TimeSpan.FromSeconds(10)).WaitAsync(Never);
        node.CrashAfter(long.MaxValue);
        gate.ContinueAfterError();
        Assert.False(write.IsCompleted);
        drain.Dispose();

        await write.WaitAsync(Never);
    }

    [Fact]
    public async Task FailHeldRequestsAnswersTheHeldRequestWithItsErrorAndReportsLaterFailures()
    {
        var (gate, node, errors) = NewGate(IoErrorPolicy.Report, IoErrorPolicy.Stop);
        var stopped = StoppedSignal(gate);
        node.CrashAfter(0);
        var write = gate.WriteAsync(0, new byte[512]).AsTask();
        await stopped.Task.WaitAsync(Never);

        gate.FailHeldRequests();

        var e = await Assert.ThrowsAsync<BlockException>(() => write.WaitAsync(Never));
        Assert.Equal(BlockError.Io, e.Error);
        await Assert.ThrowsAsync<BlockException>(() => gate.WriteAsync(0, new byte[512]).AsTask().WaitAsync(Never));
        Assert.False(errors[^1].Stopped);
        Assert.False(gate.IsStoppedByError);
    }

    [Fact]
    public async Task UnderStopASuccessfulRequestAllocatesNothingAtTheGate()
    {
        var gate = new RequestGate(new MemoryNode(Size)) { ReadErrorPolicy = IoErrorPolicy.Stop, WriteErrorPolicy = IoErrorPolicy.Stop };
        var data = new byte[4096];
        for (int warmUp = 0; warmUp < 10; warmUp++)
        {
            await RequestsAsync(gate, data);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            await RequestsAsync(gate, data);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>One of each guest request; each completes synchronously on a memory node, so no await leaves this thread.</summary>
    private static async ValueTask RequestsAsync(RequestGate gate, byte[] data)
    {
        await gate.WriteAsync(0, data);
        await gate.ReadAsync(0, data);
        await gate.WriteZeroesAsync(4096, 4096);
        await gate.DiscardAsync(8192, 4096);
        await gate.FlushAsync();
    }

    private static (RequestGate Gate, FaultInjectingNode Node, List<GuestIoError> Errors) NewGate(IoErrorPolicy read, IoErrorPolicy write)
    {
        var node = new FaultInjectingNode(new MemoryNode(Size));
        var gate = new RequestGate(node) { ReadErrorPolicy = read, WriteErrorPolicy = write };
        var errors = new List<GuestIoError>();
        gate.IoError += e =>
        {
            lock (errors)
            {
                errors.Add(e);
            }
        };
        return (gate, node, errors);
    }

    /// <summary>Completes at the next failure that stops <paramref name="gate"/>.</summary>
    private static TaskCompletionSource StoppedSignal(RequestGate gate)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnError(GuestIoError e)
        {
            if (e.Stopped)
            {
                gate.IoError -= OnError;
                signal.TrySetResult();
            }
        }

        gate.IoError += OnError;
        return signal;
    }

    private static byte[] Filled(int length, byte value) => Enumerable.Repeat(value, length).ToArray();
}
