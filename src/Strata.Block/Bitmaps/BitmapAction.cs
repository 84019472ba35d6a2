namespace Strata.Block.Bitmaps;

/// <summary>
/// One bitmap command on a drive, as the engine takes it (QEMU's block-dirty-bitmap-add, -remove,
/// -clear, -enable, -disable, -merge; qapi/block-core.json). Several make one transaction
/// (<see cref="Drive.ChangeBitmapsAsync"/>, <see cref="Drive.SnapshotAsync(IReadOnlyList{Live.SnapshotRequest}, IReadOnlyList{BitmapAction}?, CancellationToken)"/>).
/// </summary>
/// <param name="Kind">What to do.</param>
/// <param name="Drive">The drive whose bitmap it is (for a merge, the target's).</param>
/// <param name="Name">The bitmap (for a merge, the target).</param>
public sealed record BitmapAction(BitmapActionKind Kind, Drive Drive, string Name)
{
    /// <summary>Add: bytes per bit; null: the file's when it exists, else <see cref="DriveBitmaps.DefaultGranularity"/>.</summary>
    public long? Granularity { get; init; }

    /// <summary>Add: kept in the drive's top qcow2 layer (when no <see cref="File"/> is given).</summary>
    public bool Persistent { get; init; }

    /// <summary>Add: created not recording.</summary>
    public bool Disabled { get; init; }

    /// <summary>Add: the dirty_bitmap file it lives in, opened when it exists, created when it does not.</summary>
    public string? File { get; init; }

    /// <summary>
    /// Add: the console's set_dirty: the drive's earlier set_dirty bitmaps go on recording until the
    /// next snapshot switch, where they stop (docs/bitmaps.md, "Hand-off").
    /// </summary>
    public bool HandOff { get; init; }

    /// <summary>
    /// Add: the drive has served no request since it was opened (the daemon's start), so a file
    /// recorded unchanged at its last close, or left Active by a crash, keeps its tracking lineage
    /// (<see cref="QuietImage"/>).
    /// </summary>
    public bool Quiet { get; init; }

    /// <summary>Merge: the bitmaps whose bits are added to the target.</summary>
    public IReadOnlyList<BitmapSource> Sources { get; init; } = [];
}
