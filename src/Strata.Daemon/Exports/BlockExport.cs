using Strata.Block;
using Strata.Block.Graph;
using Strata.Nbd.Server;

namespace Strata.Daemon.Exports;

/// <summary>
/// An export added over QMP (block-export-add, nbd-server-add): its id, the node it was asked for,
/// the NBD export clients see, and what it holds while it lives: a frozen layer's view and the
/// bitmaps it offers, each marked busy (docs/backup-pull.md).
/// </summary>
/// <remarks>
/// What it holds is let go only once the export is retired and its last client has gone
/// (<see cref="NbdExport.Retire"/>), so no client ever reads a layer a merge is allowed to change.
/// </remarks>
public sealed class BlockExport(string id, string nodeName, Drive drive, NbdExport export, FrozenLayerView? view, IReadOnlyList<IDisposable> uses)
{
    public string Id { get; } = id;

    /// <summary>The node-name it was added with (query-block-exports).</summary>
    public string NodeName { get; } = nodeName;

    public Drive Drive { get; } = drive;

    public NbdExport Export { get; } = export;

    /// <summary>The frozen layer's view it reads; null when it exports the drive itself (writable).</summary>
    public FrozenLayerView? View { get; } = view;

    /// <summary>True once its removal began: it is no longer offered, and goes once its clients have.</summary>
    public bool ShuttingDown => Export.IsRetired;

    /// <summary>Lets go of the view and the bitmaps (after the last client has gone).</summary>
    public void Release()
    {
        foreach (var use in uses)
        {
            use.Dispose();
        }

        View?.Dispose();
    }
}
