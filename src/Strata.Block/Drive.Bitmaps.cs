using Strata.Block.Bitmaps;

namespace Strata.Block;

/// <summary>The drive's dirty bitmaps: commands on them, loading them at open, moving them at a merge, saving them at close (docs/bitmaps.md).</summary>
public sealed partial class Drive
{
    /// <summary>The drive's dirty bitmaps; they mark every guest write whatever the chain below looks like.</summary>
    public DriveBitmaps Bitmaps { get; }

    /// <summary>
    /// Runs bitmap actions, on one drive or several, as one transaction: every action is checked and
    /// prepared first (a failure leaves everything as it was), then all are applied at one point in
    /// time under the drains of the drives involved, then the stores of bitmaps that stopped are
    /// saved. Returns what could not be saved after the change (the change stands).
    /// </summary>
    public static async Task<IReadOnlyList<string>> ChangeBitmapsAsync(IReadOnlyList<BitmapAction> actions, CancellationToken cancellationToken = default)
    {
        var plan = await BitmapPlan.PrepareAsync(actions, cancellationToken);
        var drains = new Dictionary<Drive, RequestGate.Drain>();
        try
        {
            foreach (var drive in plan.Drives)
            {
                drains[drive] = await drive.Gate.DrainAsync(cancellationToken);
            }
        }
        catch
        {
            foreach (var drain in drains.Values)
            {
                drain.Dispose();
            }

            await plan.AbortAsync();
            throw;
        }

        try
        {
            plan.Apply(d => drains[d]);
        }
        finally
        {
            foreach (var drain in drains.Values)
            {
                drain.Dispose();
            }
        }

        return await plan.FinishAsync(new HashSet<Drive>());
    }

    /// <summary>
    /// Writes the bits of every recording bitmap kept in a dirty_bitmap file into its file, under one
    /// drain, so that recovery after a later crash starts from these bits instead of whole intent
    /// regions (docs/formats/dirty-bitmap.md, "Crash safety"). Bitmaps kept in an image are left
    /// alone: QEMU's rule makes one found in use after a crash inconsistent whatever it holds.
    /// Returns a line for each bitmap whose checkpoint failed; those go on as before (their intents
    /// still cover every write), and so does the guest.
    /// </summary>
    /// <exception cref="BlockException"><see cref="BlockError.TimedOut"/>: the drain found requests still in flight; nothing was written.</exception>
    public async Task<IReadOnlyList<string>> CheckpointBitmapsAsync(CancellationToken cancellationToken = default)
    {
        if (!Bitmaps.All.Any(IsCheckpointed))
        {
            return [];
        }

        var problems = new List<string>();
        using var drain = await Gate.DrainAsync(cancellationToken);

        // Read again under the drain: this is the set no write can slip past.
        foreach (var bitmap in Bitmaps.All.Where(IsCheckpointed))
        {
            try
            {
                await bitmap.Store!.CheckpointAsync(bitmap.Bits, cancellationToken);
            }
            catch (IOException e)
            {
                problems.Add($"bitmap {bitmap.Name}: checkpoint failed: {e.Message}");
            }
        }

        return problems;

        static bool IsCheckpointed(DriveBitmap b) => b.Recording && b.Tracking && b.Store is not null && b.HostLayer is null;
    }

    /// <summary>
    /// At open: the bitmaps the top layer stores (qcow2's bitmaps extension) become the drive's, as
    /// QEMU loads them; the enabled ones record (on a writable drive), one left in use by a tracker
    /// that died without recovery is Inconsistent.
    /// </summary>
    private async Task LoadStoredBitmapsAsync(CancellationToken cancellationToken)
    {
        if (Top is not IBitmapHost host || host.StoredBitmaps.Count == 0)
        {
            return;
        }

        var loaded = new List<DriveBitmap>();
        try
        {
            foreach (var info in host.StoredBitmaps)
            {
                var store = host.OpenBitmap(info.Name);
                try
                {
                    var bits = new DirtyBitmap(Gate.Size, store.Granularity);
                    var result = await store.LoadAsync(bits, cancellationToken);
                    var bitmap = BitmapPlan.Loaded(info.Name, bits, store, Top, null, result);
                    loaded.Add(bitmap);
                    bitmap.Recording = result.Enabled && !bitmap.Inconsistent && !ReadOnly;
                    if (bitmap.Recording)
                    {
                        await store.BeginTrackingAsync(cancellationToken);
                        bitmap.Tracking = true;
                    }
                }
                catch when (!loaded.Exists(b => b.Store == store))
                {
                    await store.DisposeAsync();
                    throw;
                }
            }
        }
        catch (Exception e) when (e is IOException or BlockException)
        {
            foreach (var bitmap in loaded)
            {
                await bitmap.Store!.DisposeAsync();
            }

            throw new BlockException(e is BlockException b ? b.Error : BlockError.Io, $"drive '{Id}': loading the bitmaps of '{Top.FileName}' failed: {e.Message}");
        }

        using var drain = await Gate.DrainAsync(cancellationToken);
        foreach (var bitmap in loaded)
        {
            Bitmaps.Insert(bitmap, drain);
        }
    }

    /// <summary>
    /// At a merge's commit, under its drain: a bitmap stored in a layer the merge drops moves into
    /// the base, which takes that layer's place (an older bitmap of the same name there is replaced),
    /// and its old copy goes with the layer. Failures leave the bitmap tracking in memory and are
    /// reported through <see cref="DriveBitmaps.Warning"/>.
    /// </summary>
    private async Task RehomeMergedBitmapsAsync(IReadOnlyList<IBlockNode> merged, IBlockNode baseNode, RequestGate.Drain drain)
    {
        foreach (var bitmap in Bitmaps.All.Where(b => b.HostLayer is { } host && merged.Contains(host)))
        {
            var old = bitmap.Store!;
            try
            {
                if (baseNode is IBitmapHost host)
                {
                    if (host.StoredBitmaps.Any(b => b.Name == bitmap.Name))
                    {
                        await using var replaced = host.OpenBitmap(bitmap.Name);
                        await replaced.RemoveAsync();
                    }

                    var store = await host.CreateBitmapAsync(bitmap.Name, bitmap.Bits.Granularity, bitmap.Recording);
                    await BitmapPlan.LoadCreatedAsync(store, null, CancellationToken.None);
                    if (bitmap.Tracking)
                    {
                        await store.BeginTrackingAsync();
                    }
                    else
                    {
                        await store.SaveAsync(bitmap.Bits, bitmap.StoredState);
                    }

                    DriveBitmaps.Rehome(bitmap, store, baseNode, drain);
                }
                else
                {
                    bitmap.Store = null;
                    bitmap.HostLayer = null;
                    bitmap.Tracking = false;
                    Bitmaps.Warn($"bitmap '{bitmap.Name}': '{baseNode.FileName}' cannot store bitmaps; it goes on in memory only");
                }

                await old.RemoveAsync();
            }
            catch (Exception e) when (e is IOException or BlockException)
            {
                if (ReferenceEquals(bitmap.Store, old))
                {
                    bitmap.Store = null;
                    bitmap.HostLayer = null;
                    bitmap.Tracking = false;
                }

                Bitmaps.Warn($"bitmap '{bitmap.Name}': moving it into '{baseNode.FileName}' failed ({e.Message}); it goes on in memory only");
            }
            finally
            {
                await old.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// At close, under the closing drain: each of <paramref name="bitmaps"/> that tracks is saved
    /// Consistent (with <paramref name="quiet"/>, the image files after the last flush), every store
    /// closed. Returns what failed.
    /// </summary>
    private static async Task<IReadOnlyList<string>> CloseBitmapsAsync(IEnumerable<DriveBitmap> bitmaps, QuietImage? quiet)
    {
        var problems = new List<string>();
        foreach (var bitmap in bitmaps)
        {
            if (bitmap.Store is not { } store)
            {
                continue;
            }

            try
            {
                if (bitmap.Tracking && quiet is null)
                {
                    await BitmapPlan.SaveAsync(bitmap, store, BitmapStoreState.Consistent);
                }
                else if (bitmap.Tracking)
                {
                    await store.SaveAtCloseAsync(bitmap.Bits, quiet);
                    bitmap.Tracking = false;
                    bitmap.StoredState = BitmapStoreState.Consistent;
                }
            }
            catch (Exception e) when (e is IOException or BlockException or UnauthorizedAccessException)
            {
                problems.Add($"bitmap '{bitmap.Name}' ({store.Description}) could not be saved: {e.Message}");
            }
            finally
            {
                await store.DisposeAsync();
            }
        }

        return problems;
    }
}
