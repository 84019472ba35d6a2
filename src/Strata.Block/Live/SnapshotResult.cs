namespace Strata.Block.Live;

/// <summary>What a live snapshot did: where its time went, and which old roots are not yet on stable storage.</summary>
/// <param name="Timings">Drain, switch and flush times.</param>
/// <param name="Unflushed">Old roots whose flush after the switch failed (empty when the snapshot is on stable storage).</param>
public sealed record SnapshotResult(SnapshotTimings Timings, IReadOnlyList<UnflushedImage> Unflushed)
{
    /// <summary>How long making the overlays ready took, before the drain (zero when the caller prepared them).</summary>
    public TimeSpan Prepare { get; init; }

    /// <summary>Bitmaps whose stores could not be saved after the switch, one line each (the bitmaps go on in memory).</summary>
    public IReadOnlyList<string> BitmapProblems { get; init; } = [];
}
