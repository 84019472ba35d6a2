namespace Strata.Block.Live;

/// <summary>One drive's part in a live snapshot: the overlay to switch it to, and whether to create it or take it as it is.</summary>
public sealed record SnapshotRequest(Drive Drive, string OverlayFile, SnapshotMode Mode);
