namespace Strata.Block;

/// <summary>
/// Sees every guest write that passes a <see cref="RequestGate"/> before it reaches the node, so that
/// dirty bitmaps hanging on a drive mark each write whatever the node graph looks like underneath.
/// </summary>
public interface IWriteObserver
{
    /// <summary>Called for writes, write-zeroes and discards, before the node sees them.</summary>
    void OnWrite(long offset, long length);
}
