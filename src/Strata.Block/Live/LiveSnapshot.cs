namespace Strata.Block.Live;

/// <summary>
/// Switches drives to new overlays at one point in time (QEMU's blockdev-snapshot-sync and
/// transaction): from the moment it returns every write goes to the overlay and the old root is a
/// frozen, consistent point-in-time image.
/// </summary>
/// <remarks>
/// The guest is held only for the switch itself: overlays are created and opened beforehand, the
/// old roots are flushed once before the drain (the bulk of dirty data) and once inside it (what
/// arrived meanwhile). All drives are drained together, in a fixed order, so a multi-drive snapshot
/// is one point in time; if anything fails before the roots change, nothing changes.
/// </remarks>
public static class LiveSnapshot
{
    public static async Task SwitchAsync(IReadOnlyList<SnapshotSwitch> switches, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(switches);
        if (switches.Select(s => s.Gate).Distinct().Count() != switches.Count)
        {
            throw BlockException.Invalid("a drive appears twice in one snapshot");
        }

        foreach (var s in switches)
        {
            await s.Gate.Root.FlushAsync(cancellationToken);
        }

        var drains = new List<RequestGate.Drain>(switches.Count);
        try
        {
            foreach (var s in switches)
            {
                drains.Add(await s.Gate.DrainAsync(cancellationToken));
            }

            var oldRoots = new IBlockNode[switches.Count];
            for (int i = 0; i < switches.Count; i++)
            {
                oldRoots[i] = switches[i].Gate.Root;
                await oldRoots[i].FlushAsync(cancellationToken);
            }

            // Past this point nothing may fail half-way: attach every overlay, then swap every root.
            var newRoots = new IBlockNode[switches.Count];
            for (int i = 0; i < switches.Count; i++)
            {
                newRoots[i] = switches[i].Attach(oldRoots[i]);
            }

            for (int i = 0; i < switches.Count; i++)
            {
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
    }
}
