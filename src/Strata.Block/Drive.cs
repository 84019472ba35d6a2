using Strata.Block.Bitmaps;
using Strata.Block.Graph;

namespace Strata.Block;

/// <summary>
/// A guest's disk (QEMU's BlockBackend): the stable name it is exported under, the request gate every
/// guest request passes through, the write observers, the layers behind it, and every operation on
/// that graph: snapshot switch, merge, reopen, relink (DESIGN.md, "Drive"; docs/architecture.md,
/// "Who owns which node" and "Graph operations").
/// </summary>
/// <remarks>
/// The drive owns every layer of its chain (<see cref="LayerChain"/>): it opened them, it closes them.
/// No backing edge inside it owns its node, so a graph operation re-points edges and closes the
/// layers it dropped in one place. Every change of the graph happens under a drain of
/// <see cref="Gate"/>; the operations themselves are not serialized here: their caller runs one at a
/// time per drive.
/// </remarks>
public sealed partial class Drive : IAsyncDisposable
{
    private readonly LayerChain _chain;
    private readonly ILayerOpener _opener;
    private readonly LayerOpenOptions _options;
    private int _closed;

    // The drain taken by CloseAsync, never released: a closed drive admits no request.
    private RequestGate.Drain? _closedHold;

    private Drive(string id, string file, LayerOpenOptions options, LayerChain chain, ILayerOpener opener)
    {
        Id = id;
        File = file;
        _options = options;
        _chain = chain;
        _opener = opener;
        Gate = new RequestGate(chain.Layers[0]);
        Bitmaps = new Bitmaps.DriveBitmaps(Gate);
    }

    /// <summary>The drive's name: the NBD export name, the device in commands.</summary>
    public string Id { get; }

    /// <summary>The image the drive was opened on, as given.</summary>
    public string File { get; }

    /// <summary>The format the drive was opened with; null: it was probed.</summary>
    public string? Format => _options.Format;

    /// <summary>True when every layer is opened with the host's page cache bypassed (cache=none).</summary>
    public bool Direct => _options.Direct;

    public RequestGate Gate { get; }

    public IBlockNode Root => Gate.Root;

    public bool ReadOnly => _options.ReadOnly || Gate.IsReadOnly;

    /// <summary>Opens the image at <paramref name="file"/> and its backing chain as the drive <paramref name="id"/>.</summary>
    public static async Task<Drive> OpenAsync(string id, string file, LayerOpenOptions options, ILayerOpener opener, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        ArgumentException.ThrowIfNullOrEmpty(file);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(opener);
        var chain = await opener.OpenChainAsync(file, options, cancellationToken);
        var drive = new Drive(id, file, options, chain, opener);
        try
        {
            await drive.LoadStoredBitmapsAsync(cancellationToken);
        }
        catch
        {
            await chain.DisposeAsync();
            throw;
        }

        return drive;
    }

    /// <summary>
    /// Adds a write observer: it sees every guest write, write-zeroes and discard before it reaches a
    /// layer, whatever the graph below looks like, across snapshot switches and merges (where dirty
    /// bitmaps hang).
    /// </summary>
    public void AddWriteObserver(IWriteObserver observer) => Gate.AddObserver(observer);

    /// <summary>Removes a write observer; false when it was not there.</summary>
    public bool RemoveWriteObserver(IWriteObserver observer) => Gate.RemoveObserver(observer);

    /// <summary>Closes the drive with no time limit (see <see cref="CloseAsync"/>).</summary>
    public async ValueTask DisposeAsync() => await CloseAsync();

    /// <summary>
    /// Closes the drive for good: waits for the requests in flight and holds every later one, flushes
    /// the root and every former root the gate still flushes, saves every tracking bitmap Consistent
    /// and closes its store, then closes the chain, looking through a merge's mirror, so a merge's top
    /// and base are both closed (a qcow2 image clears its dirty bit). Requests abandoned at the
    /// deadline leave the bitmaps' stores Active: recovery rebuilds them.
    /// </summary>
    /// <param name="requestsDeadline">
    /// When to stop waiting for requests in flight. Those still running then are abandoned: the images
    /// are flushed as far as they let, but not closed, since a request still runs inside them.
    /// </param>
    /// <param name="flushDeadline">When to stop waiting for the flush and the close.</param>
    /// <exception cref="IOException">One line saying what could not be done; everything else was.</exception>
    public async Task CloseAsync(CancellationToken requestsDeadline = default, CancellationToken flushDeadline = default)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        // Requests a failure holds (error policy stop) will see no resume: they fail with their error.
        Gate.FailHeldRequests();
        try
        {
            // Closing has its own deadline (the caller's), not the gate's drain timeout: at it the requests are abandoned.
            _closedHold = await Gate.DrainAsync(Timeout.InfiniteTimeSpan, requestsDeadline);
        }
        catch (OperationCanceledException)
        {
            int stuck = Gate.InFlight;
            throw new IOException($"drive {Id}: {stuck} request{(stuck == 1 ? "" : "s")} still in flight at the deadline, abandoned; "
                + $"{await FlushAbandonedAsync(flushDeadline)}; not closed");
        }

        // Bitmaps stored in the images are saved before the flush, which writes them back; those in
        // dirty_bitmap files after it, with the image files as they will stay until the next open.
        var bitmaps = Bitmaps.TakeAll(_closedHold);
        var inFiles = bitmaps.Where(b => b.HostLayer is null).ToList();
        var bitmapProblems = await CloseBitmapsAsync(bitmaps.Except(inFiles), null);
        if (!ReadOnly)
        {
            try
            {
                await Gate.FlushNodesAsync(flushDeadline).AsTask().WaitAsync(flushDeadline);
            }
            catch (OperationCanceledException)
            {
                // The flush still runs inside a node: closing it now could tear its metadata.
                await CloseBitmapsAsync(inFiles, null);
                throw new IOException($"drive {Id}: flushing did not finish by the deadline; not closed");
            }
            catch (Exception e) when (e is IOException or BlockException)
            {
                // Closing still writes back what it can (a qcow2 image its metadata); the failure is reported.
                await CloseBitmapsAsync(inFiles, null);
                await CloseChainAsync(flushDeadline);
                throw new IOException($"drive {Id}: flushing failed: {e.Message}", e);
            }
        }

        bitmapProblems = [.. bitmapProblems, .. await CloseBitmapsAsync(inFiles, ReadOnly ? null : QuietImage.Of(Top))];
        await CloseChainAsync(flushDeadline);
        if (bitmapProblems.Count > 0)
        {
            throw new IOException($"drive {Id}: {string.Join("; ", bitmapProblems)}");
        }
    }

    /// <summary>Flushes what can be flushed of a drive whose requests were abandoned; says how that went.</summary>
    private async Task<string> FlushAbandonedAsync(CancellationToken flushDeadline)
    {
        if (ReadOnly)
        {
            return "read-only, nothing to flush";
        }

        try
        {
            await Gate.FlushNodesAsync(flushDeadline).AsTask().WaitAsync(flushDeadline);
            return "its images were flushed";
        }
        catch (OperationCanceledException)
        {
            return "flushing its images did not finish either";
        }
        catch (Exception e) when (e is IOException or BlockException)
        {
            return $"flushing its images failed: {e.Message}";
        }
    }

    /// <summary>Closes every layer the drive owns, top first (a merge's base included).</summary>
    private async Task CloseChainAsync(CancellationToken deadline)
    {
        try
        {
            await _chain.DisposeAsync().AsTask().WaitAsync(deadline);
        }
        catch (OperationCanceledException)
        {
            throw new IOException($"drive {Id}: closing its images did not finish by the deadline");
        }
        catch (Exception e) when (e is IOException or BlockException)
        {
            throw new IOException($"drive {Id}: closing failed: {e.Message}", e);
        }
    }
}
