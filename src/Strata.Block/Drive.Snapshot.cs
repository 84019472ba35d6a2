using System.Diagnostics;
using Strata.Block.Bitmaps;
using Strata.Block.Graph;
using Strata.Block.Live;

namespace Strata.Block;

/// <summary>Live snapshot of one drive or several at one point in time (DESIGN.md: every graph change happens under a drain).</summary>
public sealed partial class Drive
{
    /// <summary>
    /// Takes a live snapshot of every drive in <paramref name="requests"/> at one point in time (QEMU's
    /// transaction of blockdev-snapshot-sync): prepares each overlay, then switches every drive under
    /// one drain (<see cref="LiveSnapshot"/>). A failure before the switch leaves every drive as it
    /// was and no file behind; from the switch on the call succeeds, and an old image that could not
    /// be flushed afterwards is listed in the result.
    /// </summary>
    public static Task<SnapshotResult> SnapshotAsync(IReadOnlyList<SnapshotRequest> requests, CancellationToken cancellationToken = default)
        => SnapshotAsync(requests, null, cancellationToken);

    /// <summary>
    /// A live snapshot with bitmap actions in the same transaction: the actions are checked and
    /// prepared with the overlays, and applied at the switch, under the same drain, so a write lands
    /// either before the switch (in the old image, and in a bitmap that stops there) or after it (in
    /// the overlay, and in a bitmap that starts there), never in both or neither. Each snapshotted
    /// drive's bitmaps follow it (<see cref="SnapshotBitmapHandOver"/>). If anything fails before the
    /// switch, nothing happens. What could not be saved after the switch is in the result.
    /// </summary>
    public static async Task<SnapshotResult> SnapshotAsync(IReadOnlyList<SnapshotRequest> requests, IReadOnlyList<BitmapAction>? bitmapActions,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        if (requests.GroupBy(r => r.Drive).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw BlockException.Invalid($"drive '{twice.Key.Id}' appears twice in one snapshot");
        }

        long start = Stopwatch.GetTimestamp();
        await using var snapshot = new LiveSnapshot();
        var handOvers = new List<(Drive Drive, SnapshotBitmapHandOver HandOver)>();
        var overlays = new Dictionary<Drive, IBlockNode>();
        BitmapPlan? plan = null;
        SnapshotResult result;
        try
        {
            foreach (var request in requests)
            {
                var prepared = await request.Drive.PrepareSnapshotAsync(request.OverlayFile, request.Mode, cancellationToken);
                snapshot.Add(prepared.ToSwitch());
                overlays[request.Drive] = prepared.Overlay;
                handOvers.Add((request.Drive, await SnapshotBitmapHandOver.PrepareAsync(request.Drive, prepared.Overlay, cancellationToken)));
            }

            if (bitmapActions is { Count: > 0 })
            {
                plan = await BitmapPlan.PrepareAsync(bitmapActions, cancellationToken, overlays);
                foreach (var drive in plan.Drives.Where(d => !requests.Any(r => r.Drive == d)))
                {
                    // Bitmap actions on a drive that is not snapshotted: it only takes part in the drain.
                    snapshot.Add(new SnapshotSwitch(drive.Gate, null));
                }
            }

            snapshot.AtSwitch = drainOf =>
            {
                foreach (var (drive, handOver) in handOvers)
                {
                    handOver.AtSwitch(drainOf(drive.Gate));
                }

                plan?.Apply(d => drainOf(d.Gate));
            };
            var prepare = Stopwatch.GetElapsedTime(start);
            result = await snapshot.SwitchAsync(cancellationToken) with { Prepare = prepare };
        }
        catch
        {
            // Before the switch (it throws only then): the bitmaps made for it go before the overlays do.
            foreach (var (_, handOver) in handOvers)
            {
                await handOver.AbortAsync();
            }

            if (plan is not null)
            {
                await plan.AbortAsync();
            }

            throw;
        }

        var problems = new List<string>();
        foreach (var (_, handOver) in handOvers)
        {
            problems.AddRange(await handOver.AfterAsync());
        }

        if (plan is not null)
        {
            problems.AddRange(await plan.FinishAsync(requests.Select(r => r.Drive).ToHashSet()));
        }

        return result with { BitmapProblems = problems };
    }

    /// <summary>
    /// Creates or opens the overlay for a live snapshot of this drive and checks it fits: a layer that
    /// records its backing file, the drive's size, and (for an existing overlay) a backing file that is
    /// the drive's current image. Nothing about the drive changes; on failure no file is left behind.
    /// </summary>
    public async Task<PreparedSnapshot> PrepareSnapshotAsync(string overlayPath, SnapshotMode mode, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(overlayPath);
        if (ReadOnly)
        {
            throw BlockException.ReadOnly($"drive '{Id}' is read-only: a snapshot would have nothing to protect");
        }

        ThrowIfBusy();
        var current = Root;
        string? currentFile = current.FileName is { } f ? _opener.FullName(f) : null;
        string full = _opener.FullName(overlayPath);
        if (currentFile is null)
        {
            throw BlockException.NotSupported($"drive '{Id}' has no image file to put an overlay on");
        }

        if (ChainFiles().Contains(full))
        {
            throw BlockException.Invalid($"'{overlayPath}' is already in use by drive '{Id}'");
        }

        bool created = false;
        if (mode == SnapshotMode.AbsolutePaths)
        {
            if (_opener.Exists(full))
            {
                throw BlockException.Invalid($"'{overlayPath}' already exists (use mode 'existing' to take it as the overlay)");
            }

            await _opener.CreateOverlayAsync(full, current, cancellationToken);
            created = true;
        }

        IBlockNode? node = null;
        try
        {
            node = await _opener.OpenLayerAsync(full, new LayerOpenOptions { Direct = Direct }, cancellationToken);
            if (node is not (IBackedLayer and IBackingFileRecord))
            {
                throw BlockException.Invalid($"'{overlayPath}' is a {node.DriverName} image, which records no backing file (a snapshot overlay must be qcow2)");
            }

            CheckOverlayFits(node, (IBackingFileRecord)node, overlayPath, full, currentFile, current);
            return new PreparedSnapshot(this, (IBackedLayer)node, full, created);
        }
        catch
        {
            if (node is not null)
            {
                await node.DisposeAsync();
            }

            if (created && _opener.Exists(full))
            {
                _opener.Delete(full);
            }

            throw;
        }
    }

    /// <summary>Makes a prepared overlay the drive's top under the snapshot's drain: the drive owns it from here.</summary>
    internal IBlockNode AttachOverlay(IBackedLayer overlay, IBlockNode oldRoot)
    {
        // Not yet serving: attaching is building the overlay, and cannot fail.
        overlay.BackingEdge.Attach(oldRoot);
        _chain.AddOnTop(overlay);

        // The old root is frozen from here on: it gives up writing, keeps its readers, and still
        // forbids other writers and resizers (docs/locking.md). Only giving up: this cannot fail.
        oldRoot.SetPermissions(BackingPermissions, PermissionCheck.Conflicts);
        return overlay;
    }

    /// <summary>Closes a prepared overlay that did not become the top (taken back from the chain if it got there), removes a file made for it.</summary>
    internal async ValueTask DiscardOverlayAsync(IBackedLayer overlay, string path, bool created)
    {
        if (_chain.Owns(overlay))
        {
            _chain.Remove(overlay);
        }

        overlay.BackingEdge.Attach(null);
        await overlay.DisposeAsync();
        if (created)
        {
            _opener.Delete(path);
        }
    }

    private void CheckOverlayFits(IBlockNode overlay, IBackingFileRecord record, string overlayPath, string full, string currentFile, IBlockNode current)
    {
        if (record.BackingFileName is not { } backing)
        {
            throw BlockException.Invalid($"'{overlayPath}' has no backing file; it must be created with -b {currentFile}");
        }

        string resolved = _opener.ResolveBackingFile(full, backing);
        if (resolved != currentFile)
        {
            throw BlockException.Invalid($"'{overlayPath}' has backing file '{backing}', but drive '{Id}' is on '{currentFile}'");
        }

        if (record.BackingFormat is { } format && format != current.DriverName)
        {
            throw BlockException.Invalid($"'{overlayPath}' records backing format '{format}', but '{currentFile}' is {current.DriverName}");
        }

        if (overlay.Size != current.Size)
        {
            // The guest's disk must not change size under it at the switch.
            throw BlockException.Invalid($"'{overlayPath}' is {overlay.Size} bytes, but drive '{Id}' is {current.Size} bytes");
        }
    }
}
