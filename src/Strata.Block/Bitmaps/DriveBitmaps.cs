using System.Text;

namespace Strata.Block.Bitmaps;

/// <summary>
/// A drive's dirty bitmaps (<see cref="Drive.Bitmaps"/>) and the write observer that marks them: it
/// hangs on the drive's gate while at least one bitmap records, so a drive without recording bitmaps
/// writes as fast as one without bitmaps at all.
/// </summary>
/// <remarks>
/// Invariant: the set of bitmaps and which of them record change only under a drain of the gate (the
/// mutators take the drain as proof), so every change is one point in time between guest writes. The
/// write path reads a copy-on-write array of the recording bitmaps without a lock: before a request
/// reaches the disk each recording bitmap's store is told (<see cref="IBitmapStore.BeforeWriteAsync"/>),
/// after it the bits are set. Changes are made by <see cref="Drive.ChangeBitmapsAsync"/> (one command
/// or a transaction), a snapshot, a merge, the drive's open and its close; their caller runs one at a
/// time per drive, as for every graph change.
/// </remarks>
public sealed class DriveBitmaps : IWriteObserver
{
    /// <summary>The granularity of a new bitmap when none is asked for and its store has none: QEMU's default for most images.</summary>
    public const long DefaultGranularity = 64 << 10;

    /// <summary>The longest name, in bytes of UTF-8 (qcow2.txt, "Bitmap directory": name_size).</summary>
    public const int MaxNameBytes = 1023;

    private readonly RequestGate _gate;

    // Protects _all; the write path never takes it.
    private readonly Lock _lock = new();
    private readonly List<DriveBitmap> _all = [];

    // Copy-on-write, replaced under a drain; read by the write path without a lock.
    private DriveBitmap[] _recording = [];

    internal DriveBitmaps(RequestGate gate) => _gate = gate;

    /// <summary>Opens and creates dirty_bitmap files for this drive; null: the daemon gave none, and bitmaps with a file are refused.</summary>
    public IBitmapFiles? Files { get; set; }

    /// <summary>Raised with one line when a bitmap could not follow a graph change and went on in memory only (the daemon logs it).</summary>
    public event Action<string>? Warning;

    /// <summary>Every bitmap of the drive, in the order they were added.</summary>
    public IReadOnlyList<DriveBitmap> All
    {
        get
        {
            lock (_lock)
            {
                return [.. _all];
            }
        }
    }

    /// <summary>The bitmap named <paramref name="name"/>; null when there is none.</summary>
    public DriveBitmap? Find(string name)
    {
        lock (_lock)
        {
            return _all.Find(b => b.Name == name);
        }
    }

    /// <summary>Throws QEMU's words when <paramref name="name"/> cannot name a bitmap.</summary>
    public static void ValidateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
        {
            throw BlockException.Invalid("Bitmap name cannot be empty");
        }

        if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
        {
            throw BlockException.Invalid($"Bitmap name is too long (the limit is {MaxNameBytes} bytes)");
        }
    }

    ValueTask IWriteObserver.BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var recording = Volatile.Read(ref _recording);
        for (int i = 0; i < recording.Length; i++)
        {
            if (recording[i].Store is not { } store)
            {
                continue;
            }

            var pending = store.BeforeWriteAsync(offset, length, cancellationToken);
            if (!pending.IsCompletedSuccessfully)
            {
                return AwaitRestAsync(pending, recording, i + 1, offset, length, cancellationToken);
            }

            pending.GetAwaiter().GetResult();
        }

        return ValueTask.CompletedTask;
    }

    void IWriteObserver.OnWritten(long offset, long length)
    {
        foreach (var bitmap in Volatile.Read(ref _recording))
        {
            bitmap.Bits.Set(offset, length);
        }
    }

    internal void Warn(string message) => Warning?.Invoke(message);

    /// <summary>Adds <paramref name="bitmap"/> (its name is free: the caller checked) with its recording state as set.</summary>
    internal void Insert(DriveBitmap bitmap, RequestGate.Drain drain)
    {
        CheckDrain(drain);
        lock (_lock)
        {
            _all.Add(bitmap);
        }

        Refresh();
    }

    /// <summary>Takes <paramref name="bitmap"/> out; it stops recording.</summary>
    internal void Remove(DriveBitmap bitmap, RequestGate.Drain drain)
    {
        CheckDrain(drain);
        lock (_lock)
        {
            _all.Remove(bitmap);
        }

        Refresh();
    }

    /// <summary>Starts or stops recording into <paramref name="bitmap"/>.</summary>
    internal void SetRecording(DriveBitmap bitmap, bool recording, RequestGate.Drain drain)
    {
        CheckDrain(drain);
        bitmap.Recording = recording;
        Refresh();
    }

    /// <summary>Moves <paramref name="bitmap"/> to another store (a snapshot's overlay, a merge's base); the write path asks the new one from now on.</summary>
    internal static void Rehome(DriveBitmap bitmap, IBitmapStore store, IBlockNode hostLayer, RequestGate.Drain drain)
    {
        ArgumentNullException.ThrowIfNull(drain);
        bitmap.Store = store;
        bitmap.HostLayer = hostLayer;
    }

    /// <summary>Takes every bitmap out at once (the drive closes), returning them.</summary>
    internal IReadOnlyList<DriveBitmap> TakeAll(RequestGate.Drain drain)
    {
        CheckDrain(drain);
        List<DriveBitmap> all;
        lock (_lock)
        {
            all = [.. _all];
            _all.Clear();
        }

        Refresh();
        return all;
    }

    private void CheckDrain(RequestGate.Drain drain)
    {
        ArgumentNullException.ThrowIfNull(drain);
        if (!drain.IsHeldOn(_gate))
        {
            throw new InvalidOperationException("a drive's bitmaps change only while its gate is drained");
        }
    }

    // Under a drain: the recording array and the observer's place on the gate follow the bitmaps.
    private void Refresh()
    {
        DriveBitmap[] recording;
        lock (_lock)
        {
            recording = [.. _all.Where(b => b.Recording)];
        }

        bool wasObserving = Volatile.Read(ref _recording).Length != 0;
        Volatile.Write(ref _recording, recording);
        if (recording.Length != 0 && !wasObserving)
        {
            _gate.AddObserver(this);
        }
        else if (recording.Length == 0 && wasObserving)
        {
            _gate.RemoveObserver(this);
        }
    }

    private static async ValueTask AwaitRestAsync(ValueTask pending, DriveBitmap[] recording, int next, long offset, long length,
        CancellationToken cancellationToken)
    {
        await pending;
        for (int i = next; i < recording.Length; i++)
        {
            if (recording[i].Store is { } store)
            {
                await store.BeforeWriteAsync(offset, length, cancellationToken);
            }
        }
    }
}
