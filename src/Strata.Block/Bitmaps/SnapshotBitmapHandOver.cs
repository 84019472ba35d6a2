namespace Strata.Block.Bitmaps;

/// <summary>
/// What a live snapshot does to one drive's bitmaps (docs/bitmaps.md, "Across a snapshot"): a bitmap
/// stored in the old top qcow2 layer is saved there Frozen, describing that frozen image exactly,
/// and moves on into the new overlay, where it goes on tracking; a bitmap the console's set_dirty
/// handed off from stops recording, and is saved Frozen.
/// </summary>
/// <remarks>
/// Everything that can fail happens before the drain (<see cref="PrepareAsync"/>: the bitmaps are
/// created in the overlay and told tracking begins) or after it (<see cref="AfterAsync"/>: saves,
/// whose failures are reported, never thrown); at the switch only memory changes.
/// </remarks>
internal sealed class SnapshotBitmapHandOver
{
    private readonly Drive _drive;
    private readonly IBlockNode _overlay;
    private readonly List<Move> _moves = [];
    private readonly List<DriveBitmap> _stopped = [];

    private SnapshotBitmapHandOver(Drive drive, IBlockNode overlay)
    {
        _drive = drive;
        _overlay = overlay;
    }

    /// <summary>Creates, in <paramref name="overlay"/>, the bitmaps the drive keeps in its top layer; nothing else changes.</summary>
    public static async Task<SnapshotBitmapHandOver> PrepareAsync(Drive drive, IBlockNode overlay, CancellationToken cancellationToken)
    {
        var handOver = new SnapshotBitmapHandOver(drive, overlay);
        try
        {
            foreach (var bitmap in drive.Bitmaps.All.Where(b => b.HostLayer is not null && b.Store is not null))
            {
                bool goesOn = bitmap.Recording && !bitmap.StopsAtSnapshot;
                if (overlay is not IBitmapHost host)
                {
                    handOver._moves.Add(new Move(bitmap, null, false));
                    continue;
                }

                if (host.StoredBitmaps.Any(b => b.Name == bitmap.Name))
                {
                    throw BlockException.Invalid($"'{overlay.FileName}' already stores a bitmap named '{bitmap.Name}', which drive '{drive.Id}' keeps in its top image");
                }

                // Tracking begins in the new store even for a bitmap not recording now: an enable in
                // the same transaction applies after the switch, and a store must be tracking before
                // its bitmap records (IBitmapStore's order). One still not recording after the switch
                // is saved in AfterAsync, which ends the tracking again.
                var store = await host.CreateBitmapAsync(bitmap.Name, bitmap.Bits.Granularity, goesOn, cancellationToken);
                await BitmapPlan.LoadCreatedAsync(store, null, cancellationToken);
                handOver._moves.Add(new Move(bitmap, store, false));
                await store.BeginTrackingAsync(cancellationToken);
                handOver._moves[^1] = handOver._moves[^1] with { Tracking = true };
            }
        }
        catch
        {
            await handOver.AbortAsync();
            throw;
        }

        return handOver;
    }

    /// <summary>At the switch, under the drive's drain: stops the handed-off bitmaps and moves the others' stores. Cannot fail.</summary>
    public void AtSwitch(RequestGate.Drain drain)
    {
        foreach (var bitmap in _drive.Bitmaps.All.Where(b => b.StopsAtSnapshot && b.Recording))
        {
            _drive.Bitmaps.SetRecording(bitmap, false, drain);
            bitmap.StopsAtSnapshot = false;
            _stopped.Add(bitmap);
        }

        for (int i = 0; i < _moves.Count; i++)
        {
            var move = _moves[i];
            var bitmap = move.Bitmap;
            _moves[i] = move with { OldStore = bitmap.Store, OldTracking = bitmap.Tracking, Frozen = bitmap.Snapshot() };
            if (move.NewStore is { } store)
            {
                DriveBitmaps.Rehome(bitmap, store, _overlay, drain);
            }
            else
            {
                // The overlay cannot keep bitmaps: this one goes on in memory only.
                bitmap.Store = null;
                bitmap.HostLayer = null;
            }

            bitmap.Tracking = move.Tracking;
        }
    }

    /// <summary>After the drain: each old store gets the bits of the switch, Frozen, and is closed; stopped bitmaps are saved Frozen. Returns what failed.</summary>
    public async Task<IReadOnlyList<string>> AfterAsync()
    {
        var problems = new List<string>();
        foreach (var move in _moves)
        {
            if (move.OldStore is not { } old)
            {
                continue;
            }

            await Report(problems, move.Bitmap.Name, old, async () =>
            {
                if (move.OldTracking)
                {
                    await old.SaveAsync(move.Frozen!, BitmapStoreState.Frozen);
                }

                await old.DisposeAsync();
            });
            if (move.NewStore is null)
            {
                problems.Add($"bitmap '{move.Bitmap.Name}': the overlay cannot store bitmaps; it goes on in memory only");
            }
            else if (!move.Bitmap.Recording && !_stopped.Contains(move.Bitmap))
            {
                // Not recording: its new home gets its bits now, as they stand.
                await Report(problems, move.Bitmap.Name, move.NewStore, () => BitmapPlan.SaveAsync(move.Bitmap, move.NewStore, move.Bitmap.StoredState));
            }
        }

        foreach (var bitmap in _stopped)
        {
            if (bitmap.Store is { } store)
            {
                await Report(problems, bitmap.Name, store, () => BitmapPlan.SaveAsync(bitmap, store, BitmapStoreState.Frozen));
            }
        }

        return problems;
    }

    /// <summary>Before the switch, on failure: removes the bitmaps made in the overlay.</summary>
    public async ValueTask AbortAsync()
    {
        foreach (var move in _moves)
        {
            if (move.NewStore is { } store)
            {
                try
                {
                    await store.RemoveAsync();
                }
                catch (Exception e) when (e is IOException or BlockException)
                {
                    // The overlay is discarded next; an existing one keeps a stray, disabled bitmap.
                }

                await store.DisposeAsync();
            }
        }

        _moves.Clear();
    }

    private static async ValueTask Report(List<string> problems, string name, IBitmapStore store, Func<ValueTask> work)
    {
        try
        {
            await work();
        }
        catch (Exception e) when (e is IOException or BlockException or UnauthorizedAccessException)
        {
            problems.Add($"bitmap '{name}': {store.Description}: {e.Message}");
        }
    }

    private sealed record Move(DriveBitmap Bitmap, IBitmapStore? NewStore, bool Tracking)
    {
        public IBitmapStore? OldStore { get; init; }

        public bool OldTracking { get; init; }

        public DirtyBitmap? Frozen { get; init; }
    }
}
