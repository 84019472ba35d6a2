using Strata.Block;
using Strata.Formats;

namespace Strata.Daemon;

/// <summary>
/// A guest's disk: the stable name it is exported under, the request gate every guest request passes
/// through, and the node chain behind it (DESIGN.md, "Drive").
/// </summary>
public sealed partial class Drive : IAsyncDisposable
{
    private int _closed;

    // The drain taken by CloseAsync, never released: a closed drive admits no request.
    private RequestGate.Drain? _closedHold;

    private Drive(DriveSpec spec, RequestGate gate)
    {
        Spec = spec;
        Gate = gate;
    }

    public string Id => Spec.Id;

    public DriveSpec Spec { get; }

    public RequestGate Gate { get; }

    public IBlockNode Root => Gate.Root;

    public bool ReadOnly => Spec.ReadOnly || Gate.IsReadOnly;

    public static async Task<Drive> OpenAsync(DriveSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var options = new ImageOpenOptions { Format = spec.Format, ReadOnly = spec.ReadOnly, Direct = spec.Direct, Drivers = spec.Drivers };
        var root = await ImageOpener.OpenAsync(spec.File, options, cancellationToken);
        return new Drive(spec, new RequestGate(root));
    }

    /// <summary>Closes the drive with no time limit (see <see cref="CloseAsync"/>).</summary>
    public async ValueTask DisposeAsync() => await CloseAsync();

    /// <summary>
    /// Closes the drive for good: waits for the requests in flight and holds every later one, flushes
    /// the root and every former root the gate still flushes, then closes the chain, looking through a
    /// merge's mirror, so a merge's top and base are both closed (a qcow2 image clears its dirty bit).
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

        try
        {
            _closedHold = await Gate.DrainAsync(requestsDeadline);
        }
        catch (OperationCanceledException)
        {
            int stuck = Gate.InFlight;
            throw new IOException($"drive {Id}: {stuck} request{(stuck == 1 ? "" : "s")} still in flight at the deadline, abandoned; "
                + $"{await FlushAbandonedAsync(flushDeadline)}; not closed");
        }

        if (!ReadOnly)
        {
            try
            {
                await Gate.FlushNodesAsync(flushDeadline).AsTask().WaitAsync(flushDeadline);
            }
            catch (OperationCanceledException)
            {
                // The flush still runs inside a node: closing it now could tear its metadata.
                throw new IOException($"drive {Id}: flushing did not finish by the deadline; not closed");
            }
            catch (Exception e) when (e is IOException or BlockException)
            {
                // Closing still writes back what it can (a qcow2 image its metadata); the failure is reported.
                await CloseChainAsync(flushDeadline);
                throw new IOException($"drive {Id}: flushing failed: {e.Message}", e);
            }
        }

        await CloseChainAsync(flushDeadline);
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

    /// <summary>Closes the top image and, through its backing links, the whole chain (a merge's base included).</summary>
    private async Task CloseChainAsync(CancellationToken deadline)
    {
        try
        {
            await Top.DisposeAsync().AsTask().WaitAsync(deadline);
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
