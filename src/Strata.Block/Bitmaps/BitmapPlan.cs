namespace Strata.Block.Bitmaps;

/// <summary>
/// The bitmap actions of one command or one transaction, in three phases: prepared (validated, and
/// everything that can fail done: stores created or opened, tracking begun), applied at one point in
/// time under the drains of every drive involved (which cannot fail), then finished (stores saved
/// once tracking stopped). A failure while preparing undoes what was prepared, so nothing happens.
/// </summary>
/// <remarks>
/// Actions are checked in order against the bitmaps as the earlier actions of the same plan leave
/// them (an add then a merge into it; a remove then an add of the same name), and applied in that
/// order. QEMU's checks and words (block/dirty-bitmap.c, blockdev.c): a busy bitmap may not be
/// removed, cleared, enabled, disabled or merged into; an inconsistent one may only be removed or
/// cleared.
/// </remarks>
internal sealed class BitmapPlan
{
    private readonly List<Action<Func<Drive, RequestGate.Drain>>> _steps = [];
    private readonly List<Func<ValueTask>> _undo = [];
    private readonly Dictionary<(Drive, string), DriveBitmap?> _view = [];
    private readonly HashSet<DriveBitmap> _touched = [];
    private readonly HashSet<DriveBitmap> _switched = [];

    // Cleared by an earlier action of this plan: no longer inconsistent for the actions after it.
    private readonly HashSet<DriveBitmap> _cleared = [];
    private readonly List<DriveBitmap> _removed = [];
    private readonly HashSet<Drive> _drives = [];

    /// <summary>Every drive whose gate must be drained to apply the plan, in a fixed order.</summary>
    public IReadOnlyList<Drive> Drives => [.. _drives.OrderBy(d => d.Id, StringComparer.Ordinal)];

    private readonly IReadOnlyDictionary<Drive, IBlockNode> _newTops;

    private BitmapPlan(IReadOnlyDictionary<Drive, IBlockNode> newTops) => _newTops = newTops;

    /// <summary>
    /// Checks and prepares <paramref name="actions"/>. <paramref name="newTops"/> are the overlays of
    /// drives snapshotted in the same transaction: a persistent bitmap added to such a drive starts
    /// at the switch, so it is kept in the overlay, not in the image the switch freezes.
    /// </summary>
    public static async Task<BitmapPlan> PrepareAsync(IReadOnlyList<BitmapAction> actions, CancellationToken cancellationToken,
        IReadOnlyDictionary<Drive, IBlockNode>? newTops = null)
    {
        ArgumentNullException.ThrowIfNull(actions);
        var plan = new BitmapPlan(newTops ?? new Dictionary<Drive, IBlockNode>());
        try
        {
            foreach (var action in actions)
            {
                await plan.PrepareAsync(action, cancellationToken);
            }
        }
        catch
        {
            await plan.AbortAsync();
            throw;
        }

        return plan;
    }

    /// <summary>Applies every action, in order; the caller holds a drain of each of <see cref="Drives"/>. Cannot fail.</summary>
    public void Apply(Func<Drive, RequestGate.Drain> drainOf)
    {
        foreach (var step in _steps)
        {
            step(drainOf);
        }
    }

    /// <summary>
    /// After the drains: saves what stopped tracking or changed while not tracking, removes what was
    /// removed. Bitmaps of <paramref name="snapshotted"/> drives that stopped are saved Frozen (they
    /// describe the image the snapshot froze), others Consistent. Returns what could not be saved.
    /// </summary>
    public async Task<IReadOnlyList<string>> FinishAsync(IReadOnlySet<Drive> snapshotted)
    {
        var problems = new List<string>();
        foreach (var bitmap in _removed)
        {
            await Guard(problems, bitmap, async store =>
            {
                if (bitmap.HostLayer is not null)
                {
                    // Inside an image the bitmap goes with the command, as in QEMU.
                    await store.RemoveAsync();
                }
                else if (bitmap.Tracking)
                {
                    // A dirty_bitmap file is the user's: it stays, complete.
                    await store.SaveAsync(bitmap.Bits, BitmapStoreState.Consistent);
                }

                await store.DisposeAsync();
            });
        }

        foreach (var bitmap in _switched.Except(_removed))
        {
            await Guard(problems, bitmap, store => store.SetEnabledAsync(bitmap.Recording));
        }

        foreach (var bitmap in _touched.Except(_removed))
        {
            if (bitmap.Recording)
            {
                continue;
            }

            var state = bitmap.Tracking && _drives.Any(d => snapshotted.Contains(d) && d.Bitmaps.Find(bitmap.Name) == bitmap)
                ? BitmapStoreState.Frozen
                : BitmapStoreState.Consistent;
            await Guard(problems, bitmap, store => SaveAsync(bitmap, store, state));
        }

        return problems;
    }

    /// <summary>Undoes the preparation of every action (stores made are removed, tracking begun is saved back).</summary>
    public async ValueTask AbortAsync()
    {
        for (int i = _undo.Count - 1; i >= 0; i--)
        {
            try
            {
                await _undo[i]();
            }
            catch (Exception e) when (e is IOException or BlockException)
            {
                // The first failure is the one reported; what cannot be undone is left Active, which recovery reads as a superset.
            }
        }

        _undo.Clear();
    }

    /// <summary>Saves the bits of a bitmap that does not record, in <paramref name="state"/>; tracking, if any, ends.</summary>
    internal static async ValueTask SaveAsync(DriveBitmap bitmap, IBitmapStore store, BitmapStoreState state)
    {
        await store.SaveAsync(bitmap.Bits, state);
        bitmap.Tracking = false;
        bitmap.StoredState = state;
    }

    private static async ValueTask Guard(List<string> problems, DriveBitmap bitmap, Func<IBitmapStore, ValueTask> work)
    {
        if (bitmap.Store is not { } store)
        {
            return;
        }

        try
        {
            await work(store);
        }
        catch (Exception e) when (e is IOException or BlockException or UnauthorizedAccessException)
        {
            problems.Add($"bitmap '{bitmap.Name}': {store.Description}: {e.Message}");
        }
    }

    private async Task PrepareAsync(BitmapAction action, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(action);
        _drives.Add(action.Drive);
        switch (action.Kind)
        {
            case BitmapActionKind.Add:
                await PrepareAddAsync(action, cancellationToken);
                break;
            case BitmapActionKind.Remove:
            {
                var bitmap = Lookup(action.Drive, action.Name);
                CheckNotBusy(bitmap);
                _view[(action.Drive, action.Name)] = null;
                _steps.Add(drainOf => action.Drive.Bitmaps.Remove(bitmap, drainOf(action.Drive)));
                _removed.Add(bitmap);
                break;
            }

            case BitmapActionKind.Clear:
            {
                var bitmap = Lookup(action.Drive, action.Name);
                CheckNotBusy(bitmap);
                if (bitmap.Store is { } store)
                {
                    // Before the bits lose anything: a lineage renewed for a clear that then aborts only costs a full backup.
                    await store.ClearedAsync(cancellationToken);
                }

                _touched.Add(bitmap);
                _cleared.Add(bitmap);
                _steps.Add(_ =>
                {
                    // Empty from this point in time on: nothing in it is untrustworthy any more.
                    bitmap.Bits.ClearAll();
                    bitmap.Inconsistent = false;
                });
                break;
            }

            case BitmapActionKind.Enable:
            {
                var bitmap = Lookup(action.Drive, action.Name);
                CheckUsable(bitmap);
                await BeginTrackingAsync(bitmap, cancellationToken);
                _switched.Add(bitmap);
                _steps.Add(drainOf => action.Drive.Bitmaps.SetRecording(bitmap, true, drainOf(action.Drive)));
                break;
            }

            case BitmapActionKind.Disable:
            {
                var bitmap = Lookup(action.Drive, action.Name);
                CheckUsable(bitmap);
                _touched.Add(bitmap);
                _switched.Add(bitmap);
                _steps.Add(drainOf =>
                {
                    action.Drive.Bitmaps.SetRecording(bitmap, false, drainOf(action.Drive));
                    bitmap.StopsAtSnapshot = false;
                });
                break;
            }

            case BitmapActionKind.Merge:
                PrepareMerge(action);
                break;
            default:
                throw BlockException.Invalid($"unknown bitmap action {action.Kind}");
        }
    }

    private void PrepareMerge(BitmapAction action)
    {
        var target = Lookup(action.Drive, action.Name);
        CheckUsable(target);
        var sources = new List<DriveBitmap>();
        foreach (var source in action.Sources)
        {
            _drives.Add(source.Drive);
            var bitmap = Lookup(source.Drive, source.Name);
            if (bitmap.Inconsistent && !_cleared.Contains(bitmap))
            {
                throw Inconsistent(bitmap);
            }

            if (bitmap.Bits.DiskSize != target.Bits.DiskSize)
            {
                throw BlockException.Invalid($"Bitmaps are incompatible and can't be merged: '{bitmap.Name}' covers {bitmap.Bits.DiskSize} bytes, '{target.Name}' {target.Bits.DiskSize}");
            }

            sources.Add(bitmap);
        }

        _touched.Add(target);
        _steps.Add(_ =>
        {
            foreach (var source in sources.Where(s => s != target))
            {
                target.Bits.MergeFrom(source.Bits);
            }
        });
    }

    private async Task PrepareAddAsync(BitmapAction action, CancellationToken cancellationToken)
    {
        var drive = action.Drive;
        DriveBitmaps.ValidateName(action.Name);
        if (Find(drive, action.Name) is not null)
        {
            throw BlockException.Invalid($"Bitmap already exists: {action.Name}");
        }

        if (action.Granularity is { } asked && (asked < DirtyBitmap.MinGranularity || !long.IsPow2(asked)))
        {
            throw BlockException.Invalid($"Granularity must be power of 2, and at least {DirtyBitmap.MinGranularity}");
        }

        if (action.Granularity is { } g)
        {
            DirtyBitmap.ValidateGranularity(g);
        }

        bool recording = !action.Disabled;
        var (bitmap, created) = await OpenStoreAsync(action, recording, _newTops.GetValueOrDefault(drive) ?? drive.Top, cancellationToken);
        _undo.Add(async () =>
        {
            if (bitmap.Store is not { } store)
            {
                return;
            }

            if (created)
            {
                await store.RemoveAsync();
            }
            else if (bitmap.Tracking)
            {
                await SaveAsync(bitmap, store, bitmap.StoredState);
            }

            await store.DisposeAsync();
        });
        if (recording && bitmap.Inconsistent)
        {
            throw Inconsistent(bitmap);
        }

        if (recording)
        {
            await BeginTrackingAsync(bitmap, cancellationToken, action.Quiet ? QuietImage.Of(drive.Top) : null);
        }

        _view[(drive, action.Name)] = bitmap;
        _steps.Add(drainOf =>
        {
            if (action.HandOff)
            {
                foreach (var earlier in drive.Bitmaps.All.Where(b => b.ConsoleSet && b.Recording))
                {
                    earlier.StopsAtSnapshot = true;
                }
            }

            bitmap.Recording = recording;
            drive.Bitmaps.Insert(bitmap, drainOf(drive));
        });
    }

    /// <summary>The new bitmap with its store (a file opened or created, a bitmap created in the top qcow2 layer), loaded; and whether the store was created.</summary>
    private static async Task<(DriveBitmap Bitmap, bool Created)> OpenStoreAsync(BitmapAction action, bool recording, IBlockNode top,
        CancellationToken cancellationToken)
    {
        var drive = action.Drive;
        long size = drive.Gate.Size;
        long granularity = action.Granularity ?? DriveBitmaps.DefaultGranularity;
        if (action.File is { } file)
        {
            var files = drive.Bitmaps.Files ?? throw BlockException.NotSupported("dirty_bitmap files are not available in this daemon");
            if (!files.Exists(file))
            {
                var made = await files.CreateAsync(file, size, granularity, cancellationToken);
                var empty = new DirtyBitmap(size, granularity);
                await LoadCreatedAsync(made, empty, cancellationToken);
                return (new DriveBitmap(action.Name, empty, made, null, file) { ConsoleSet = action.HandOff }, true);
            }

            var store = await files.OpenAsync(file, cancellationToken);
            try
            {
                if (store.DiskSize != size)
                {
                    throw BlockException.Invalid($"'{file}' tracks a {store.DiskSize}-byte disk, but drive '{drive.Id}' is {size} bytes");
                }

                if (action.Granularity is { } asked && asked != store.Granularity)
                {
                    throw BlockException.Invalid($"'{file}' has a granularity of {store.Granularity} bytes, not {asked}");
                }

                var bits = new DirtyBitmap(size, store.Granularity);
                var loaded = await store.LoadAsync(bits, cancellationToken);
                return (Loaded(action.Name, bits, store, null, file, loaded, action.HandOff), false);
            }
            catch
            {
                await store.DisposeAsync();
                throw;
            }
        }

        if (!action.Persistent)
        {
            return (new DriveBitmap(action.Name, new DirtyBitmap(size, granularity), null, null, null) { ConsoleSet = action.HandOff }, false);
        }

        if (top is not IBitmapHost host)
        {
            throw BlockException.NotSupported($"Cannot store persistent bitmaps in a {top.DriverName} image (give 'file' for a dirty_bitmap file, or use a qcow2 image)");
        }

        if (drive.ReadOnly)
        {
            throw BlockException.ReadOnly($"drive '{drive.Id}' is read-only: a persistent bitmap cannot be stored in it");
        }

        if (host.StoredBitmaps.Any(b => b.Name == action.Name))
        {
            throw BlockException.Invalid($"Bitmap already exists: {action.Name} (stored in '{top.FileName}')");
        }

        var created = await host.CreateBitmapAsync(action.Name, granularity, recording, cancellationToken);
        var fresh = new DirtyBitmap(size, granularity);
        await LoadCreatedAsync(created, fresh, cancellationToken);
        return (new DriveBitmap(action.Name, fresh, created, top, null) { ConsoleSet = action.HandOff }, true);
    }

    /// <summary>
    /// A store just created is loaded all the same (IBitmapStore's order: load before anything else),
    /// into <paramref name="into"/> or, when null, a scratch bitmap; on failure it is removed again.
    /// </summary>
    internal static async ValueTask LoadCreatedAsync(IBitmapStore store, DirtyBitmap? into, CancellationToken cancellationToken)
    {
        try
        {
            await store.LoadAsync(into ?? new DirtyBitmap(store.DiskSize, store.Granularity), cancellationToken);
        }
        catch
        {
            await store.RemoveAsync(CancellationToken.None);
            await store.DisposeAsync();
            throw;
        }
    }

    /// <summary>A bitmap made from a store just loaded: an in-use or corrupt copy is Inconsistent; a recovered one is complete (a superset).</summary>
    internal static DriveBitmap Loaded(string name, DirtyBitmap bits, IBitmapStore store, IBlockNode? host, string? file, BitmapLoadResult loaded, bool consoleSet = false)
    {
        bool inconsistent = loaded.State == BitmapStoreState.Inconsistent;
        return new DriveBitmap(name, bits, store, host, file)
        {
            ConsoleSet = consoleSet,
            Inconsistent = inconsistent,
            StoredState = loaded.State is BitmapStoreState.Frozen or BitmapStoreState.Inconsistent ? loaded.State : BitmapStoreState.Consistent,
        };
    }

    /// <summary>Tells the store tracking begins, before the bitmap records (IBitmapStore's order); undone by saving it back.</summary>
    private async Task BeginTrackingAsync(DriveBitmap bitmap, CancellationToken cancellationToken, QuietImage? quiet = null)
    {
        if (bitmap.Store is not { } store || bitmap.Tracking)
        {
            return;
        }

        await store.BeginTrackingAsync(quiet, cancellationToken);
        bitmap.Tracking = true;
        var before = bitmap.StoredState;
        _undo.Add(async () =>
        {
            if (bitmap.Tracking && !bitmap.Recording)
            {
                await SaveAsync(bitmap, store, before);
            }
        });
    }

    private DriveBitmap? Find(Drive drive, string name) =>
        _view.TryGetValue((drive, name), out var planned) ? planned : drive.Bitmaps.Find(name);

    private DriveBitmap Lookup(Drive drive, string name) =>
        Find(drive, name) ?? throw BlockException.Invalid($"Dirty bitmap '{name}' not found");

    private static void CheckNotBusy(DriveBitmap bitmap)
    {
        if (bitmap.Busy)
        {
            throw BlockException.Invalid($"Bitmap '{bitmap.Name}' is currently in use by another operation and cannot be used");
        }
    }

    private void CheckUsable(DriveBitmap bitmap)
    {
        CheckNotBusy(bitmap);
        if (bitmap.Inconsistent && !_cleared.Contains(bitmap))
        {
            throw Inconsistent(bitmap);
        }
    }

    private static BlockException Inconsistent(DriveBitmap bitmap) =>
        BlockException.Invalid($"Bitmap '{bitmap.Name}' is inconsistent and cannot be used; try block-dirty-bitmap-remove to delete it, or -clear to start it afresh");
}
