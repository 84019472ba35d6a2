using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// The guest of the RBD fault tests: several writers, each on its own slice of the disk over its own
/// NBD connection, running a seeded workload (writes, write-zeroes, discards, flushes) in batches until
/// told to stop (or a bounded number of batches). A writer awaits each request before the next, so its
/// slice of the model follows the order the daemon acknowledged; a request enters the model only once
/// acknowledged. A request that fails is retried (a bounded number of times) before the writer moves
/// on, as a guest with a retrying error policy would: a later request may cover the same bytes, so a
/// failure cannot wait until the end. Between <see cref="BeginOutage"/> and <see cref="EndOutage"/>
/// (the OSD is down all along) a flush acknowledged after a write the same writer had acknowledged in
/// that window is a broken promise: that write cannot have reached the cluster.
/// </summary>
internal sealed class RbdFaultLoad
{
    private const int Attempts = 10;
    private const int BatchSize = 25;
    private const int MaxBatches = 400;
    private static readonly TimeSpan RetryPause = TimeSpan.FromSeconds(1);

    private readonly int _seed;
    private readonly int _writers;

    // Protects _model (writers apply disjoint ranges, but the model is one object) and _failures.
    private readonly Lock _gate = new();
    private readonly DiskModel _model;
    private readonly List<RbdFaultFailure> _failures = [];
    private readonly List<string> _brokenFlushes = [];
    private int _completed;
    private volatile bool _outage;
    private volatile bool _stopping;
    private Task? _run;

    public RbdFaultLoad(DiskModel model, int seed, int writers)
    {
        _model = model;
        _seed = seed;
        _writers = writers;
    }

    /// <summary>Requests acknowledged so far, over all writers.</summary>
    public int Completed => Volatile.Read(ref _completed);

    /// <summary>Every failed attempt, in the order seen.</summary>
    public IReadOnlyList<RbdFaultFailure> Failures
    {
        get
        {
            lock (_gate)
            {
                return [.. _failures];
            }
        }
    }

    /// <summary>Flushes acknowledged during the outage after a write acknowledged during it, by writer.</summary>
    public IReadOnlyList<string> BrokenFlushes
    {
        get
        {
            lock (_gate)
            {
                return [.. _brokenFlushes];
            }
        }
    }

    /// <summary>The OSD is down from now on (call once osd-stop has returned).</summary>
    public void BeginOutage() => _outage = true;

    /// <summary>The OSD may come back from now on (call before osd-start).</summary>
    public void EndOutage() => _outage = false;

    /// <summary>Lets every writer finish its current request, then waits (bounded) for them all.</summary>
    public async Task StopAsync(TimeSpan bound)
    {
        _stopping = true;
        await (_run ?? Task.CompletedTask).WaitAsync(bound);
    }

    /// <summary>Connects every writer, then starts them.</summary>
    public async Task StartAsync(DaemonProcess daemon)
    {
        var clients = new NbdClient[_writers];
        for (int w = 0; w < _writers; w++)
        {
            clients[w] = await daemon.ConnectNbdAsync();
        }

        _run = Task.WhenAll(clients.Select((client, w) => Task.Run(() => RunWriterAsync(client, w))));
    }

    /// <summary>Waits until <paramref name="count"/> requests were acknowledged; fails when a writer fails or the bound runs out first.</summary>
    public Task WaitForProgressAsync(int count, TimeSpan bound) =>
        WaitUntilAsync(() => Completed >= count, $"{count} acknowledged requests", bound);

    /// <summary>Waits until at least one attempt failed; fails when a writer fails or the bound runs out first.</summary>
    public Task WaitForFailureAsync(TimeSpan bound) =>
        WaitUntilAsync(() => Failures.Count > 0, "a failed attempt", bound);

    private async Task WaitUntilAsync(Func<bool> done, string what, TimeSpan bound)
    {
        var deadline = DateTime.UtcNow + bound;
        while (!done())
        {
            if (_run is { IsCompleted: true })
            {
                await _run;
                throw new InvalidOperationException($"the load ended after {Completed} requests, before {what} (seed {_seed})");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the load acknowledged {Completed} requests and saw {Failures.Count} failures, not {what}, within {bound.TotalSeconds:0} s (seed {_seed})");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Reads the whole disk through <paramref name="client"/> and fails at the first byte that differs from the model.</summary>
    public static async Task VerifyAsync(DiskModel model, NbdClient client, string story)
    {
        const int Chunk = 1 << 20;
        var buffer = new byte[Chunk];
        for (long offset = 0; offset < model.Size; offset += Chunk)
        {
            int n = (int)Math.Min(Chunk, model.Size - offset);
            await client.ReadAsync(offset, buffer.AsMemory(0, n));
            long bad = model.FirstMismatch(offset, buffer.AsSpan(0, n));
            Assert.True(bad < 0, $"byte {bad} is not what was acknowledged ({story})");
            model.Adopt(offset, buffer.AsSpan(0, n));
        }
    }

    private async Task RunWriterAsync(NbdClient client, int writer)
    {
        long slice = _model.Size / _writers;
        long start = writer * slice;
        await using (client)
        {
            // Whether this writer had a modification acknowledged since the outage began.
            bool dirtyInOutage = false;
            for (int batch = 0; batch < MaxBatches && !_stopping; batch++)
            {
                int batchSeed = unchecked(_seed + (writer * 1_000_003) + (batch * 7919));
                foreach (var op in Workload.Generate(batchSeed, slice, BatchSize, maxLength: 64 * 1024, mix: (70, 10, 10)))
                {
                    var shifted = op with { Offset = op.Offset + start };
                    bool dirtyBefore = dirtyInOutage;
                    await SendWithRetriesAsync(client, shifted);
                    lock (_gate)
                    {
                        _model.Apply(shifted);
                        if (!_outage)
                        {
                            dirtyInOutage = false;
                        }
                        else if (op.Kind != DiskOpKind.Flush)
                        {
                            dirtyInOutage = true;
                        }
                        else if (dirtyBefore)
                        {
                            _brokenFlushes.Add($"writer {writer}, batch {batch}");
                        }
                    }

                    Interlocked.Increment(ref _completed);
                }
            }

            await client.DisconnectAsync();
        }
    }

    private async Task SendWithRetriesAsync(NbdClient client, DiskOp op)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await SendAsync(client, op);
                return;
            }
            catch (Exception error) when (error is IOException)
            {
                lock (_gate)
                {
                    _failures.Add(new RbdFaultFailure(op, error));
                }

                // Only an NBD error reply leaves the connection usable; anything else ends the writer.
                if (error is not NbdException || attempt == Attempts)
                {
                    throw new IOException($"{op} failed {attempt} times (seed {_seed}): {error.Message}", error);
                }

                await Task.Delay(RetryPause);
            }
        }
    }

    private static Task SendAsync(NbdClient client, DiskOp op) => op.Kind switch
    {
        DiskOpKind.Write => client.WriteAsync(op.Offset, op.Data),
        DiskOpKind.WriteZeroes => client.WriteZeroesAsync(op.Offset, (uint)op.Length, NbdCommandFlags.NoHole),
        DiskOpKind.WriteZeroesUnmap => client.WriteZeroesAsync(op.Offset, (uint)op.Length),
        DiskOpKind.Discard => client.TrimAsync(op.Offset, (uint)op.Length),
        DiskOpKind.Flush => client.FlushAsync(),
        _ => throw new ArgumentOutOfRangeException(nameof(op), op.Kind, "unknown request"),
    };
}
