using Strata.Block;
using Strata.Block.Live;
using Strata.Formats.Qcow2;

namespace Strata.Daemon.Live;

/// <summary>
/// An overlay made ready for one drive's live snapshot: created or opened, checked, not yet attached.
/// <see cref="DiscardAsync"/> undoes the preparation (closes it, deletes the file if it was created).
/// </summary>
public sealed class PreparedSnapshot
{
    internal PreparedSnapshot(Drive drive, Qcow2Node overlay, string path, bool created)
    {
        Drive = drive;
        Overlay = overlay;
        Path = path;
        Created = created;
    }

    public Drive Drive { get; }

    public Qcow2Node Overlay { get; }

    public string Path { get; }

    /// <summary>True when the file was created for this snapshot (and is deleted again on failure).</summary>
    public bool Created { get; }

    public SnapshotSwitch ToSwitch() => new(Drive.Gate, old =>
    {
        Overlay.AttachBacking(old);

        // The old root is frozen from here on: it gives up writing, keeps its readers, and still
        // forbids other writers and resizers (docs/locking.md). Only giving up: this cannot fail.
        old.SetPermissions(NodePermissions.Writer.ForBacking(), PermissionCheck.Conflicts);
        return Overlay;
    }, DiscardAsync);

    /// <summary>Closes the overlay without touching the image below it; deletes the file if it was made here.</summary>
    public async ValueTask DiscardAsync()
    {
        Overlay.AttachBacking(null);
        await Overlay.DisposeAsync();
        if (Created)
        {
            File.Delete(Path);
        }
    }
}
