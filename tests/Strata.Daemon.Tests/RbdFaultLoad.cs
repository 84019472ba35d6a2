using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// The guest of the RBD fault tests: several writers, each on its own slice of the disk over its own
/// NBD connection, running a seeded workload (writes, write-zeroes, discards, flushes). A writer
/// awaits each request before the next, so its slice of the model follows the order the daemon
/// acknowledged; a request enters the model only once acknowledged. A request that fails is retried
/// (a bounded number of times) before the writer moves on, as a guest with a retrying error policy
/// would: a later request may cover the same bytes, so a failure cannot wait until the end.
/// </summary>
internal sealed class RbdFaultLoad
{
    private const int Attempts = 10;
    private static readonly TimeSpan RetryPause = TimeSpan.FromSeconds(1);

    private readonly int _seed;
    private readonly int _writers;
    private readonly int _requestsPerWriter;

    // Protects _model (writers apply disjoint ranges, but the model is one object) and _failures.
    private readonly Lock _gate = new();
    private readonly DiskModel _model;
    private readonly List<RbdFaultFailure> _failures = [];
    private int _completed;

    public RbdFaultLoad(DiskModel model, int seed, int writers, int requestsPerWriter)
    {
        _model = model;
        _seed = seed;
        _writers = writers;
        _requestsPerWriter = requestsPerWriter;
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

    /// <summary>Connects every writer, then starts them; the task ends when all have run their workload.</summary>
    public async Task<Task> StartAsync(DaemonProcess daemon)
    {
        var clients = new NbdClient[_writers];
        for (int w = 0; w < _writers; w++)
        {
            clients[w] = await daemon.ConnectNbdAsync();
        }

        return Task.WhenAll(clients.Select((client, w) => Task.Run(() => RunWriterAsync(client, w))));
    }

    /// <summary>Waits until <paramref name="count"/> requests were acknowledged; fails when the bound runs out first.</summary>
    public async Task WaitForProgressAsync(int count, TimeSpan bound)
    {
        var deadline = DateTime.UtcNow + bound;
        while (Completed < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the load acknowledged {Completed} requests, not {count}, within {bound.TotalSeconds:0} s (seed {_seed})");
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
            foreach (var op in Workload.Generate(_seed + writer, slice, _requestsPerWriter, maxLength: 64 * 1024, mix: (70, 10, 10)))
            {
                var shifted = op with { Offset = op.Offset + start };
                await SendWithRetriesAsync(client, shifted);
                lock (_gate)
                {
                    _model.Apply(shifted);
                }

                Interlocked.Increment(ref _completed);
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
