namespace Strata.Nbd.Server;

/// <summary>
/// The bytes of buffers one connection's requests may hold at once (docs/nbd.md, "Memory"). The
/// receive loop takes a request's share before it reads the payload or starts the request, and waits
/// while the budget is spent: the client is held back (backpressure) instead of the server buffering.
/// Requests give their share back when done, from any thread.
/// </summary>
/// <remarks>
/// Only the receive loop takes, and it takes a request's whole share at once, so a request never
/// holds part of what it needs while it waits for the rest: whatever is spent is held by requests
/// that are running and will give it back.
/// </remarks>
internal sealed class ConnectionBudget(long limit)
{
    // Protects _available and _closed; waiters sleep on it (Monitor).
    private readonly object _lock = new();
    private long _available = limit;
    private bool _closed;

    /// <summary>The most that can be taken at once.</summary>
    public long Limit { get; } = limit;

    /// <summary>Takes <paramref name="bytes"/> if that much is available now.</summary>
    public bool TryTake(long bytes)
    {
        lock (_lock)
        {
            if (_available < bytes)
            {
                return false;
            }

            _available -= bytes;
            return true;
        }
    }

    /// <summary>
    /// Takes <paramref name="bytes"/> (at most <see cref="Limit"/>), blocking until requests in flight
    /// have given enough back; throws <see cref="ObjectDisposedException"/> once the connection is closed.
    /// </summary>
    public void Take(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bytes, Limit);
        lock (_lock)
        {
            while (_available < bytes)
            {
                ObjectDisposedException.ThrowIf(_closed, this);
                Monitor.Wait(_lock);
            }

            _available -= bytes;
        }
    }

    /// <summary>The connection is closed: a waiting <see cref="Take"/> gives up (requests held at a stopped drive may never give back).</summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            Monitor.PulseAll(_lock);
        }
    }

    public void Give(long bytes)
    {
        lock (_lock)
        {
            _available += bytes;
            Monitor.PulseAll(_lock);
        }
    }
}
