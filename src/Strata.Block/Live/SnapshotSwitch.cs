namespace Strata.Block.Live;

/// <summary>
/// One drive's part in a live snapshot: the gate whose root changes and the overlay, already open,
/// that becomes the new root with the old root as its backing.
/// </summary>
/// <param name="Gate">The drive's request gate.</param>
/// <param name="Attach">Called under the drain with the old root: attaches it as the overlay's backing and returns the overlay.</param>
public sealed record SnapshotSwitch(RequestGate Gate, Func<IBlockNode, IBlockNode> Attach);
