namespace Strata.Block;

/// <summary>
/// Sees every guest write, write-zeroes and discard that passes a <see cref="RequestGate"/>, so that
/// dirty bitmaps hanging on a drive mark each write whatever the node graph looks like underneath.
/// </summary>
/// <remarks>
/// For each admitted request with a length, the gate calls <see cref="BeforeWriteAsync"/> before any
/// node sees it and <see cref="OnWritten"/> after the node's call has returned or thrown (a failed
/// write may have reached the disk in part), and before the request leaves the gate. So a drain that
/// completes has seen every admitted write marked, and a protocol replies only after the mark: a
/// reader that clears a bit and then reads can never lose a write (docs/bitmaps.md, "When a bit is set").
/// Observers are added and removed only under a drain of the gate, so one request sees the same
/// observers before and after it.
/// </remarks>
public interface IWriteObserver
{
    /// <summary>
    /// Called before the request reaches the node; may make an intent durable (a crash-safe bitmap
    /// store). Should usually complete synchronously: it is on every write's path. A failure fails
    /// the request, which then never reaches the node.
    /// </summary>
    ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken);

    /// <summary>Called once the node is done with the request, successfully or not; must not throw.</summary>
    void OnWritten(long offset, long length);
}
