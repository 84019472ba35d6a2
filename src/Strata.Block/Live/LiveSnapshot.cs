using System.Diagnostics;

namespace Strata.Block.Live;

/// <summary>
/// Switches drives to new overlays at one point in time (QEMU's blockdev-snapshot-sync and
/// transaction): from the moment it returns every write goes to the overlay and the old root is a
/// frozen, consistent point-in-time image, flushed to stable storage.
/// </summary>
/// <remarks>
/// The guest is held only for the switch itself: overlays are created and opened beforehand, and
/// all drives are drained together, in a fixed order, so a multi-drive snapshot is one point in
/// time; if anything fails before the roots change, nothing changes. The old roots are flushed after
/// the guest is released: nothing writes them any more, and until that flush has succeeded every
/// guest flush of the drive flushes them too (<see cref="RequestGate.FlushAlso"/>), so a flush the
/// guest sends just after the switch still covers the writes it made just before.
/// </remarks>
public static class LiveSnapshot
{
    public static async Task<SnapshotTimings> SwitchAsync(IReadOnlyList<SnapshotSwitch> switches, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(switches);
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

            // Past this point nothing may fail half-way: attach every overlay, then swap every root.
            switchStart = Stopwatch.GetTimestamp();
            var newRoots = new IBlockNode[switches.Count];
            for (int i = 0; i < switches.Count; i++)
            {
                oldRoots[i] = switches[i].Gate.Root;
                newRoots[i] = switches[i].Attach(oldRoots[i]);
            }

            for (int i = 0; i < switches.Count; i++)
            {
                switches[i].Gate.FlushAlso(oldRoots[i], drains[i]);
                switches[i].Gate.ReplaceRoot(newRoots[i], drains[i]);
            }
        }
        finally
        {
            foreach (var d in drains)
            {
                d.Dispose();
            }
        }

        long released = Stopwatch.GetTimestamp();
        for (int i = 0; i < switches.Count; i++)
        {
            // Not cancellable: the switch has happened, and the snapshot must reach the disk.
            await oldRoots[i].FlushAsync(CancellationToken.None);
            switches[i].Gate.StopFlushing(oldRoots[i]);
        }

        return new SnapshotTimings(Stopwatch.GetElapsedTime(start, switchStart), Stopwatch.GetElapsedTime(switchStart, released),
            Stopwatch.GetElapsedTime(released));
    }
}
