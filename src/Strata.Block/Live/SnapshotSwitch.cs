namespace Strata.Block.Live;

/// <summary>
/// One drive's part in a live snapshot: the gate whose root changes and the overlay, already open,
/// that becomes the new root with the old root as its backing.
/// </summary>
/// <param name="Gate">The drive's request gate.</param>
/// <param name="Attach">
/// Called under the drain with the old root: attaches it as the overlay's backing and returns the
/// overlay. Null for a drive that only takes part in the drain (a transaction's bitmap actions on a
/// drive that is not snapshotted): its root stays.
/// </param>
/// <param name="Discard">
/// Undoes the preparation (detaches the old root if attached, closes the overlay, removes a file made
/// for it). <see cref="LiveSnapshot"/> calls it only when the snapshot fails before the switch.
/// </param>
public sealed record SnapshotSwitch(RequestGate Gate, Func<IBlockNode, IBlockNode>? Attach, Func<ValueTask>? Discard = null);
