namespace Strata.Block;

/// <summary>
/// Byte-range locks: shared holders (guest writes) may overlap each other; an exclusive holder (a
/// background copy of that range) excludes every overlapping holder. A live merge uses it so that a
/// chunk it copies is never overwritten by a guest write between its read and its write.
/// </summary>
/// <remarks>Waiters are not queued fairly; an exclusive waiter blocks new overlapping shared holders so it cannot starve.</remarks>
public sealed class RangeLock
{
    // Protects _held and _waiters: the set of granted ranges and the signals of those waiting.
    private readonly Lock _lock = new();
    private readonly List<Holder> _held = [];
    private readonly List<Holder> _pendingExclusive = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ValueTask<IDisposable> AcquireSharedAsync(long offset, long length, CancellationToken cancellationToken = default)
        => AcquireAsync(new Holder(this, offset, length, exclusive: false), cancellationToken);

    public ValueTask<IDisposable> AcquireExclusiveAsync(long offset, long length, CancellationToken cancellationToken = default)
        => AcquireAsync(new Holder(this, offset, length, exclusive: true), cancellationToken);

    private async ValueTask<IDisposable> AcquireAsync(Holder holder, CancellationToken cancellationToken)
    {
        bool registered = false;
        try
        {
            while (true)
            {
                Task changed;
                lock (_lock)
                {
                    if (CanGrant(holder))
                    {
                        if (registered)
                        {
                            _pendingExclusive.Remove(holder);
                        }

                        _held.Add(holder);
                        return holder;
                    }

                    if (holder.Exclusive && !registered)
                    {
                        _pendingExclusive.Add(holder);
                        registered = true;
                    }

                    changed = _changed.Task;
                }

                await changed.WaitAsync(cancellationToken);
            }
        }
        catch when (registered)
        {
            lock (_lock)
            {
                _pendingExclusive.Remove(holder);
            }

            Signal();
            throw;
        }
    }

    private bool CanGrant(Holder candidate)
    {
        foreach (var h in _held)
        {
            if (h.Overlaps(candidate) && (h.Exclusive || candidate.Exclusive))
            {
                return false;
            }
        }

        if (!candidate.Exclusive)
        {
            foreach (var w in _pendingExclusive)
            {
                if (w.Overlaps(candidate))
                {
                    return false;
                }
            }
        }

        return true;
    }

    private void Release(Holder holder)
    {
        lock (_lock)
        {
            _held.Remove(holder);
        }

        Signal();
    }

    private void Signal()
    {
        TaskCompletionSource old;
        lock (_lock)
        {
            old = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        old.TrySetResult();
    }

    private sealed class Holder(RangeLock owner, long offset, long length, bool exclusive) : IDisposable
    {
        private int _released;

        public bool Exclusive { get; } = exclusive;

        public bool Overlaps(Holder other) => offset < other.End && other.Offset < End;

        private long Offset => offset;

        private long End => offset + length;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                owner.Release(this);
            }
        }
    }
}
