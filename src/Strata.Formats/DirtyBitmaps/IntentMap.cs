namespace Strata.Formats.DirtyBitmaps;

/// <summary>
/// The coarse intent map of a tracking dirty_bitmap file (docs/formats/dirty-bitmap.md, "Intent
/// map"): one bit per region, made durable before the first write into the region since tracking
/// began or since the last checkpoint, so that after a crash the stored bits OR the intended
/// regions hold every write that reached the disk.
/// </summary>
/// <remarks>
/// Invariant: a bit of <see cref="_durable"/> is set only after a persist that included it has
/// completed; bits only clear in <see cref="Reset"/>, which the store calls when no write is in
/// flight. So <see cref="BeforeWriteAsync"/> may return at once, without a lock, when every region
/// of its range is set there: the common case, on every guest write's path. First writes into
/// regions are batched: one caller (the leader) persists a snapshot of every region wanted so far,
/// the others wait for it (group commit), and anyone whose bits came too late for that snapshot
/// leads the next one.
/// </remarks>
internal sealed class IntentMap
{
    private readonly int _shift;
    private readonly long _diskSize;
    private readonly Func<ulong[], CancellationToken, ValueTask> _persist;

    // Regions known durable; read lock-free, set with Interlocked.Or after a persist completes.
    private readonly ulong[] _durable;

    // Protects _wanted (regions asked for, durable or not) and _flush (the persist under way, if any).
    private readonly Lock _lock = new();
    private readonly ulong[] _wanted;
    private Task? _flush;

    /// <param name="persist">Writes the whole map durably (write and fdatasync); never called twice at once.</param>
    public IntentMap(long diskSize, int regionBits, Func<ulong[], CancellationToken, ValueTask> persist)
    {
        _diskSize = diskSize;
        _shift = regionBits;
        _persist = persist;
        long regions = diskSize == 0 ? 0 : ((diskSize - 1) >> regionBits) + 1;
        _durable = new ulong[(regions + 63) >> 6];
        _wanted = new ulong[_durable.Length];
    }

    /// <summary>Returns once every region <c>[offset, offset + length)</c> touches is durably intended; completes at once when all are.</summary>
    public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        if (length <= 0 || offset < 0 || offset >= _diskSize)
        {
            return ValueTask.CompletedTask;
        }

        long first = offset >> _shift;
        long last = (Math.Min(_diskSize - offset, length) + offset - 1) >> _shift;
        return AllSet(_durable, first, last) ? ValueTask.CompletedTask : IntendAsync(first, last, cancellationToken);
    }

    /// <summary>Forgets every intent (the stored bits now cover them); only while no write is in flight.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            Array.Clear(_durable);
            Array.Clear(_wanted);
        }
    }

    /// <summary>Takes the intents already durable in the file (tracking resumes on a file left active).</summary>
    public void Adopt(ReadOnlySpan<ulong> words)
    {
        lock (_lock)
        {
            for (int i = 0; i < _durable.Length && i < words.Length; i++)
            {
                _wanted[i] |= words[i];
                Interlocked.Or(ref _durable[i], words[i]);
            }
        }
    }

    /// <summary>Regions made durable so far, as words (for tests and the checkpoint).</summary>
    public ulong[] DurableWords()
    {
        lock (_lock)
        {
            return (ulong[])_durable.Clone();
        }
    }

    private async ValueTask IntendAsync(long first, long last, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            ForEachWord(first, last, (word, mask) => _wanted[word] |= mask);
        }

        // Two rounds always suffice: the second persist snapshots _wanted after our bits were set.
        for (int round = 0; round < 3; round++)
        {
            Task flush;
            TaskCompletionSource? lead = null;
            ulong[]? snapshot = null;
            lock (_lock)
            {
                if (AllSet(_durable, first, last))
                {
                    return;
                }

                if (_flush is null)
                {
                    lead = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    _flush = lead.Task;
                    snapshot = (ulong[])_wanted.Clone();
                }

                flush = _flush;
            }

            if (lead is not null)
            {
                await LeadAsync(lead, snapshot!);
            }

            await flush.WaitAsync(cancellationToken);
        }

        throw new InvalidOperationException("the intent map did not become durable after two persists");
    }

    private async ValueTask LeadAsync(TaskCompletionSource lead, ulong[] snapshot)
    {
        Exception? failure = null;
        try
        {
            // Not cancelled by one waiter: the others depend on this persist.
            await _persist(snapshot, CancellationToken.None);
            for (int i = 0; i < snapshot.Length; i++)
            {
                Interlocked.Or(ref _durable[i], snapshot[i]);
            }
        }
        catch (Exception e)
        {
            failure = e;
        }

        // Cleared before the waiters wake, so that one whose bits missed this snapshot starts the next.
        lock (_lock)
        {
            _flush = null;
        }

        if (failure is null)
        {
            lead.SetResult();
        }
        else
        {
            lead.SetException(failure);
        }
    }

    private static bool AllSet(ulong[] words, long first, long last)
    {
        long firstWord = first >> 6;
        long lastWord = last >> 6;
        for (long w = firstWord; w <= lastWord; w++)
        {
            ulong mask = Mask(w, first, last);
            if ((Volatile.Read(ref words[w]) & mask) != mask)
            {
                return false;
            }
        }

        return true;
    }

    private static void ForEachWord(long first, long last, Action<long, ulong> action)
    {
        for (long w = first >> 6; w <= last >> 6; w++)
        {
            action(w, Mask(w, first, last));
        }
    }

    // The bits of word w that lie in [first, last].
    private static ulong Mask(long w, long first, long last)
    {
        int lo = w == first >> 6 ? (int)(first & 63) : 0;
        int hi = w == last >> 6 ? (int)(last & 63) : 63;
        return (hi == 63 ? ~0UL : (1UL << (hi + 1)) - 1) & (~0UL << lo);
    }
}
