using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.TestKit;

/// <summary>
/// One open of a <see cref="MemoryBitmapFile"/>: an <see cref="IBitmapStore"/> that checks the call
/// order its contract documents (load first; writes only while tracking; nothing after remove or
/// dispose) and throws <see cref="InvalidOperationException"/> on a breach, so a drive that calls out
/// of order fails its test.
/// </summary>
public sealed class MemoryBitmapStore : IBitmapStore
{
    private readonly MemoryBitmapFile _file;
    private readonly Action? _onRemove;
    private bool _loaded;
    private bool _tracking;
    private bool _removed;
    private bool _disposed;

    public MemoryBitmapStore(MemoryBitmapFile file, string description, Action? onRemove = null)
    {
        _file = file;
        _onRemove = onRemove;
        Description = description;
        if (file.Open)
        {
            throw new BlockException(BlockError.Locked, $"{description} is in use by another tracker");
        }

        file.Open = true;
    }

    public MemoryBitmapFile File => _file;

    public string Description { get; }

    public long Granularity => _file.Granularity;

    public long DiskSize => _file.DiskSize;

    /// <summary>When set, the next BeforeWrite fails with this error.</summary>
    public Exception? FailNextBeforeWrite { get; set; }

    public ValueTask<BitmapLoadResult> LoadAsync(DirtyBitmap into, CancellationToken cancellationToken = default)
    {
        Check(!_loaded, "LoadAsync twice");
        _loaded = true;
        Log("load");
        var before = _file.State;
        bool recovered = false;
        into.Load(_file.Words);
        if (before == BitmapStoreState.Active)
        {
            if (_file.CrashSafe)
            {
                lock (_file.Lock)
                {
                    foreach (var (offset, length) in _file.Intents)
                    {
                        into.Set(offset, length);
                    }
                }

                recovered = true;
            }
            else
            {
                return ValueTask.FromResult(new BitmapLoadResult(BitmapStoreState.Inconsistent, false, _file.Enabled));
            }
        }

        return ValueTask.FromResult(new BitmapLoadResult(before, recovered, _file.Enabled));
    }

    public ValueTask BeginTrackingAsync(CancellationToken cancellationToken = default)
    {
        Check(_loaded, "BeginTrackingAsync before LoadAsync");
        Check(!_tracking, "BeginTrackingAsync while tracking");
        _tracking = true;
        _file.State = BitmapStoreState.Active;
        Log("begin");
        return ValueTask.CompletedTask;
    }

    public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        Check(_tracking, "BeforeWriteAsync while not tracking");
        if (FailNextBeforeWrite is { } failure)
        {
            FailNextBeforeWrite = null;
            return ValueTask.FromException(failure);
        }

        Interlocked.Increment(ref _file.BeforeWrites);
        lock (_file.Lock)
        {
            _file.Intents.Add((offset, length));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask SaveAsync(DirtyBitmap bits, BitmapStoreState state, CancellationToken cancellationToken = default)
    {
        Check(_loaded, "SaveAsync before LoadAsync");
        Check(state is BitmapStoreState.Frozen or BitmapStoreState.Consistent, $"SaveAsync in state {state}");
        Check(bits.Granularity == Granularity && bits.DiskSize == DiskSize, "SaveAsync of other bits");
        _tracking = false;
        _file.Words = bits.CopyWords();
        _file.State = state;
        lock (_file.Lock)
        {
            _file.Intents.Clear();
        }

        Log($"save {state}");
        return ValueTask.CompletedTask;
    }

    public ValueTask CheckpointAsync(DirtyBitmap bits, CancellationToken cancellationToken = default)
    {
        Check(_tracking, "CheckpointAsync while not tracking");
        _file.Words = bits.CopyWords();
        Log("checkpoint");
        return ValueTask.CompletedTask;
    }

    public ValueTask SetEnabledAsync(bool enabled, CancellationToken cancellationToken = default)
    {
        Check(_loaded, "SetEnabledAsync before LoadAsync");
        _file.Enabled = enabled;
        Log(enabled ? "enable" : "disable");
        return ValueTask.CompletedTask;
    }

    public ValueTask RemoveAsync(CancellationToken cancellationToken = default)
    {
        Check(!_removed, "RemoveAsync twice");
        _removed = true;
        _tracking = false;
        _file.Removed = true;
        _onRemove?.Invoke();
        Log("remove");
        return ValueTask.CompletedTask;
    }

    /// <summary>Closes without saving, as a crash would leave it.</summary>
    public void Crash()
    {
        _disposed = true;
        _file.Open = false;
    }

    public ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            _file.Open = false;
            Log("dispose");
        }

        return ValueTask.CompletedTask;
    }

    private void Log(string call)
    {
        lock (_file.Lock)
        {
            _file.Calls.Add(call);
        }
    }

    private void Check(bool ok, string what)
    {
        if (_disposed || _removed && what != "RemoveAsync twice")
        {
            throw new InvalidOperationException($"{Description}: called after {(_disposed ? "dispose" : "remove")}: {what}");
        }

        if (!ok)
        {
            throw new InvalidOperationException($"{Description}: out of order: {what}");
        }
    }
}
