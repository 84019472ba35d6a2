namespace Strata.Block.Live;

/// <summary>
/// A former root whose flush failed after a snapshot switched away from it. The switch stands; the
/// image stays registered with its gate (<see cref="RequestGate.FlushAlso"/>), so every guest flush of
/// the drive retries it until one succeeds.
/// </summary>
/// <param name="Gate">The drive's request gate.</param>
/// <param name="Node">The old root, now the overlay's backing.</param>
/// <param name="Reason">Why the flush failed.</param>
public sealed record UnflushedImage(RequestGate Gate, IBlockNode Node, string Reason);
