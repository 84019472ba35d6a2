using Strata.Block.Graph;

namespace Strata.Block.Live;

/// <summary>
/// An overlay made ready for one drive's live snapshot: created or opened, checked, not yet attached.
/// <see cref="DiscardAsync"/> undoes the preparation (closes it, deletes the file if it was created).
/// </summary>
public sealed class PreparedSnapshot
{
    internal PreparedSnapshot(Drive drive, IBackedLayer overlay, string path, bool created)
    {
        Drive = drive;
        Overlay = overlay;
        Path = path;
        Created = created;
    }

    public Drive Drive { get; }

    public IBackedLayer Overlay { get; }

    public string Path { get; }

    /// <summary>True when the file was created for this snapshot (and is deleted again on failure).</summary>
    public bool Created { get; }

    /// <summary>The drive's part in a <see cref="LiveSnapshot"/>: at the switch the overlay goes on top, the old root below it.</summary>
    public SnapshotSwitch ToSwitch() => new(Drive.Gate, old => Drive.AttachOverlay(Overlay, old), DiscardAsync);

    /// <summary>Closes the overlay without touching the image below it; deletes the file if it was made here.</summary>
    public ValueTask DiscardAsync() => Drive.DiscardOverlayAsync(Overlay, Path, Created);
}
