using Strata.Block;

namespace Strata.TestKit;

/// <summary>
/// A file whose volatile write cache is lost in a power failure. Every modifying request reaches the
/// inner node at once (so reads see it), but until a flush completes it is only "cached": on
/// <see cref="LosePowerAsync"/> a seeded random subset of the unflushed writes is undone, as if the
/// disk had persisted only some of them, in any order. Writes completed before the last completed
/// flush always survive. Use it under a <see cref="FaultInjectingNode"/> to stop a scenario first.
/// </summary>
public sealed class PowerLossNode : IBlockNode
{
    private readonly IBlockNode _inner;

    // Serializes modifying requests and the journal, so "old bytes" are read and replaced atomically.
    private readonly SemaphoreSlim _gate = new(1, 1);

    // Unflushed writes in completion order: where, what was there before, what was written.
    private readonly List<(long Offset, byte[] Old, byte[] New)> _journal = [];

    public PowerLossNode(IBlockNode inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
    }

    /// <summary>Writes not yet made durable by a completed flush.</summary>
    public int Unflushed => _journal.Count;

    public string DriverName => _inner.DriverName;

    public string? FileName => _inner.FileName;

    public long Size => _inner.Size;

    public NodeCapabilities Capabilities => _inner.Capabilities;

    public NodeLimits Limits => _inner.Limits;

    public IBlockNode? Backing => _inner.Backing;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        => _inner.ReadAsync(offset, buffer, cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        => JournaledAsync(offset, data.ToArray(), durable: (flags & WriteFlags.Fua) != 0,
            () => _inner.WriteAsync(offset, data, flags, cancellationToken), cancellationToken);

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
        => JournaledAsync(offset, new byte[length], durable: (flags & ZeroFlags.Fua) != 0,
            () => _inner.WriteZeroesAsync(offset, length, flags, cancellationToken), cancellationToken);

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
        => JournaledAsync(offset, new byte[length], durable: false, () => _inner.DiscardAsync(offset, length, cancellationToken), cancellationToken);

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        int completedBefore;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            completedBefore = _journal.Count;
        }
        finally
        {
            _gate.Release();
        }

        await _inner.FlushAsync(cancellationToken);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            _journal.RemoveRange(0, completedBefore);
        }
        finally
        {
            _gate.Release();
        }
    }

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        => _inner.GetBlockStatusAsync(offset, length, cancellationToken);

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default) => _inner.ResizeAsync(newSize, cancellationToken);

    /// <summary>
    /// The power fails: the file goes back to its last flushed state, then a random subset (chosen by
    /// <paramref name="random"/>) of the unflushed writes is replayed in order. Returns how many were lost.
    /// </summary>
    public async ValueTask<int> LosePowerAsync(Random random, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(random);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            for (int i = _journal.Count - 1; i >= 0; i--)
            {
                await WriteClippedAsync(_journal[i].Offset, _journal[i].Old, cancellationToken);
            }

            int lost = 0;
            foreach (var (offset, _, data) in _journal)
            {
                if (random.Next(2) == 0)
                {
                    lost++;
                    continue;
                }

                await WriteClippedAsync(offset, data, cancellationToken);
            }

            _journal.Clear();
            await _inner.FlushAsync(cancellationToken);
            return lost;
        }
        finally
        {
            _gate.Release();
        }
    }

    public ValueTask DisposeAsync()
    {
        _gate.Dispose();
        return _inner.DisposeAsync();
    }

    private async ValueTask JournaledAsync(long offset, byte[] data, bool durable, Func<ValueTask> request, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var old = new byte[data.Length];
            long readable = Math.Clamp(_inner.Size - offset, 0, data.Length);
            if (readable > 0)
            {
                await _inner.ReadAsync(offset, old.AsMemory(0, (int)readable), cancellationToken);
            }

            await request();
            if (!durable)
            {
                _journal.Add((offset, old, data));
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private ValueTask WriteClippedAsync(long offset, byte[] data, CancellationToken cancellationToken)
    {
        // Restoring bytes past the current end would only grow the file with zeroes; the old end holds.
        long length = Math.Clamp(_inner.Size - offset, 0, data.Length);
        return length == 0 ? ValueTask.CompletedTask : _inner.WriteAsync(offset, data.AsMemory(0, (int)length), WriteFlags.None, cancellationToken);
    }
}
