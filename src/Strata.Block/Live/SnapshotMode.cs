namespace Strata.Block.Live;

/// <summary>blockdev-snapshot-sync "mode" (qapi/block-core.json NewImageMode).</summary>
public enum SnapshotMode
{
    /// <summary>Create the overlay, recording the current image's absolute path as its backing file.</summary>
    AbsolutePaths,

    /// <summary>Open an overlay that already exists (made with <c>strata img create -b</c>).</summary>
    Existing,
}
