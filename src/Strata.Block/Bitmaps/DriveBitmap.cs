namespace Strata.Block.Bitmaps;

/// <summary>
/// One dirty bitmap of a drive (QEMU's BdrvDirtyBitmap, but hung on the drive, not on an image):
/// its bits, whether it records writes, and where it persists between runs (docs/bitmaps.md).
/// </summary>
/// <remarks>
/// Invariant: <see cref="Recording"/>, <see cref="Store"/> and <see cref="HostLayer"/> change only
/// under a drain of the drive's gate (<see cref="DriveBitmaps"/>), so each change is one point in
/// time between guest writes, and a write in flight sees the same bitmap state before and after it
/// reaches the disk.
/// </remarks>
public sealed class DriveBitmap
{
    private int _users;

    internal DriveBitmap(string name, DirtyBitmap bits, IBitmapStore? store, IBlockNode? hostLayer, string? file)
    {
        Name = name;
        Bits = bits;
        Store = store;
        HostLayer = hostLayer;
        File = file;
    }

    /// <summary>Unique in its drive, 1 to 1023 bytes of UTF-8 (qcow2.txt's limit, QEMU's too).</summary>
    public string Name { get; }

    /// <summary>The bits, in memory; marked by the drive's gate while <see cref="Recording"/>.</summary>
    public DirtyBitmap Bits { get; }

    /// <summary>True while guest writes are marked (QEMU's "recording"; "enabled" in its commands).</summary>
    public bool Recording { get; internal set; }

    /// <summary>True when the bitmap outlives the daemon: it has a store.</summary>
    public bool Persistent => Store is not null;

    /// <summary>Where the bitmap persists: a dirty_bitmap file or a bitmap inside the drive's top qcow2 layer; null: in memory only.</summary>
    public IBitmapStore? Store { get; internal set; }

    /// <summary>The layer whose image stores the bitmap (an <see cref="IBitmapHost"/>); null for a file or a bitmap in memory.</summary>
    public IBlockNode? HostLayer { get; internal set; }

    /// <summary>The dirty_bitmap file the bitmap lives in, as given; null when it has none.</summary>
    public string? File { get; }

    /// <summary>The bits cannot be trusted (found in use after a crash): it may only be removed or cleared.</summary>
    public bool Inconsistent { get; internal set; }

    /// <summary>Used by an export or a job: it cannot be removed, cleared or disabled, nor enabled.</summary>
    public bool Busy => Volatile.Read(ref _users) > 0;

    /// <summary>
    /// Set by the console's set_dirty when a newer bitmap took over: this one goes on recording until
    /// the drive's next snapshot switch, where it stops and is saved Frozen (docs/bitmaps.md, "Hand-off").
    /// </summary>
    public bool StopsAtSnapshot { get; internal set; }

    /// <summary>Added by the console's set_dirty: the next set_dirty on the drive hands off from it.</summary>
    internal bool ConsoleSet { get; init; }

    /// <summary>The store was told <see cref="IBitmapStore.BeginTrackingAsync(CancellationToken)"/> and not yet saved since.</summary>
    internal bool Tracking { get; set; }

    /// <summary>What the stored copy says of itself when it is not tracking: the state it was loaded or last saved in.</summary>
    internal BitmapStoreState StoredState { get; set; } = BitmapStoreState.Consistent;

    /// <summary>Marks the bitmap in use by an export or a job until the returned handle is disposed.</summary>
    public IDisposable Use()
    {
        Interlocked.Increment(ref _users);
        return new Release(this);
    }

    /// <summary>A copy of the bits at this moment (under a drain: exactly the bits of that point in time).</summary>
    internal DirtyBitmap Snapshot()
    {
        var copy = new DirtyBitmap(Bits.DiskSize, Bits.Granularity);
        copy.Load(Bits.CopyWords());
        return copy;
    }

    private sealed class Release(DriveBitmap bitmap) : IDisposable
    {
        private DriveBitmap? _bitmap = bitmap;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _bitmap, null) is { } b)
            {
                Interlocked.Decrement(ref b._users);
            }
        }
    }
}
