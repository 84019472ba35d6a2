using System.Diagnostics;

namespace Strata.Block.Live;

/// <summary>
/// A live snapshot of one or several drives at one point in time (QEMU's blockdev-snapshot-sync and
/// transaction): once <see cref="SwitchAsync"/> returns, every write goes to the overlays and each old
/// root is a frozen, consistent point-in-time image.
/// </summary>
/// <remarks>
/// The snapshot owns every overlay given to <see cref="Add"/>, from that moment on. The switch is its
/// point of no return:
/// <list type="bullet">
/// <item>Before it, any failure (a drive twice, a cancelled drain, an overlay that will not attach)
/// leaves every drive as it was, and disposing the snapshot discards every overlay.</item>
/// <item>From it on nothing undoes it: disposing discards nothing, and a failed flush of an old root
/// is reported in the <see cref="SnapshotResult"/>, never thrown, because the overlay is already the
/// drive's live root and holds the guest's newest writes.</item>
/// </list>
/// The guest is held only for the switch itself: overlays are made and opened beforehand, and all
/// drives are drained together, in a fixed order, so a multi-drive snapshot is one point in time. The
/// old roots are flushed after the guest is released: nothing writes them any more, and until one of
/// their flushes has succeeded every guest flush of the drive flushes them too
/// (<see cref="RequestGate.FlushAlso"/>), so a flush the guest sends just after the switch still
/// covers the writes it made just before, and an old root whose flush failed here is retried by the
/// guest's next flush. (QEMU flushes the old image before the switch, inside the drain, in
/// blockdev.c external_snapshot_action; flushing after it keeps the guest's pause short.)
/// </remarks>
public sealed class LiveSnapshot : IAsyncDisposable
{
    private readonly List<SnapshotSwitch> _switches = [];
    private Stage _stage;

    private enum Stage
    {
        Preparing,
        Switched,
        Discarded,
    }

    /// <summary>
    /// Called once at the switch, while every drive is drained, after the roots changed (the drain of
    /// a drive's gate is given for it): the bitmap hand-offs and a transaction's bitmap actions, so
    /// no guest write lands in both or neither. It must not throw: it runs past the point of no return.
    /// </summary>
    public Action<Func<RequestGate, RequestGate.Drain>>? AtSwitch { get; set; }

    /// <summary>Takes one drive's prepared overlay into the snapshot; the snapshot now owns it.</summary>
    public void Add(SnapshotSwitch snapshotSwitch)
    {
        ArgumentNullException.ThrowIfNull(snapshotSwitch);
        if (_stage != Stage.Preparing)
        {
            throw new InvalidOperationException("this snapshot has already switched or been discarded");
        }

        _switches.Add(snapshotSwitch);
    }

    /// <summary>
    /// Switches every drive to its overlay under one drain, then flushes the old roots. Throws only
    /// before the switch (then nothing changed); from the switch on, failures are in the result.
    /// </summary>
    public async Task<SnapshotResult> SwitchAsync(CancellationToken cancellationToken = default)
    {
        if (_stage != Stage.Preparing)
        {
            throw new InvalidOperationException("this snapshot has already switched or been discarded");
        }

        var switches = _switches;
        if (switches.Select(s => s.Gate).Distinct().Count() != switches.Count)
        {
            throw BlockException.Invalid("a drive appears twice in one snapshot");
        }

        long start = Stopwatch.GetTimestamp();
        var drains = new List<RequestGate.Drain>(switches.Count);
        var oldRoots = new IBlockNode[switches.Count];
        long switchStart;
        try
        {
            foreach (var s in switches)
            {
                drains.Add(await s.Gate.DrainAsync(cancellationToken));
            }

            switchStart = Stopwatch.GetTimestamp();
            var newRoots = new IBlockNode[switches.Count];
            for (int i = 0; i < switches.Count; i++)
            {
                oldRoots[i] = switches[i].Gate.Root;
                newRoots[i] = switches[i].Attach is { } attach ? attach(oldRoots[i]) : oldRoots[i];
            }

            // The point of no return: the roots change below, and nothing after this line may undo it.
            _stage = Stage.Switched;
            for (int i = 0; i < switches.Count; i++)
            {
                if (switches[i].Attach is not null)
                {
                    switches[i].Gate.FlushAlso(oldRoots[i], drains[i]);
                    switches[i].Gate.ReplaceRoot(newRoots[i], drains[i]);
                }
            }

            AtSwitch?.Invoke(gate => drains[switches.FindIndex(s => s.Gate == gate)]);
        }
        finally
        {
            foreach (var d in drains)
            {
                d.Dispose();
            }
        }

        long released = Stopwatch.GetTimestamp();
        var unflushed = new List<UnflushedImage>();
        for (int i = 0; i < switches.Count; i++)
        {
            if (switches[i].Attach is null)
            {
                continue;
            }

            try
            {
                // Not cancellable: the switch has happened, and the snapshot must reach the disk.
                await oldRoots[i].FlushAsync(CancellationToken.None);
                switches[i].Gate.StopFlushing(oldRoots[i]);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Whatever the old root throws, the switch stands; the gate keeps retrying the flush.
                unflushed.Add(new UnflushedImage(switches[i].Gate, oldRoots[i], e.Message));
            }
        }

        var timings = new SnapshotTimings(Stopwatch.GetElapsedTime(start, switchStart), Stopwatch.GetElapsedTime(switchStart, released),
            Stopwatch.GetElapsedTime(released));
        return new SnapshotResult(timings, unflushed);
    }

    /// <summary>Discards every overlay when the snapshot did not switch; does nothing once it did.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stage != Stage.Preparing)
        {
            return;
        }

        _stage = Stage.Discarded;
        Exception? first = null;
        foreach (var s in _switches)
        {
            try
            {
                if (s.Discard is { } discard)
                {
                    await discard();
                }
            }
            catch (Exception e) when (e is IOException or BlockException or UnauthorizedAccessException)
            {
                // Discard the others all the same; the first failure is reported.
                first ??= e;
            }
        }

        if (first is not null)
        {
            throw new IOException($"discarding a prepared overlay failed: {first.Message}", first);
        }
    }
}
