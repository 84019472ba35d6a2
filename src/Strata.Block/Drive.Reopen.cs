using Strata.Block.Graph;

namespace Strata.Block;

/// <summary>Reopening one layer of a drive read-write or read-only, swapped into the graph under a drain.</summary>
public sealed partial class Drive
{
    /// <summary>
    /// Returns a node for <paramref name="layer"/>'s image opened as asked: the layer itself when it
    /// already is, else a new instance swapped into the chain under a drain (the old one is closed, the
    /// drive owns the new one). Read-write, the image is held for writing (docs/locking.md), and a
    /// reopen is refused, with nothing changed, while another process uses the image in a way a writer
    /// forbids. Read-only, the layer is flushed first, under the drain, so the new open reads
    /// everything the old one wrote.
    /// </summary>
    public async Task<IBlockNode> ReopenLayerAsync(IBlockNode layer, bool readOnly, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(layer);
        if (!_chain.Owns(layer))
        {
            throw BlockException.Invalid($"'{layer.FileName}' is not a layer of drive '{Id}'");
        }

        ThrowIfViewed(layer, "reopening it or a layer below it");
        bool isRoot = ReferenceEquals(layer, Root);
        bool wasReadOnly = (layer.Capabilities & NodeCapabilities.ReadOnly) != 0;
        var wanted = readOnly ? (isRoot ? NodePermissions.Reader : BackingPermissions) : NodePermissions.Writer;
        if (wasReadOnly == readOnly)
        {
            if (!readOnly)
            {
                layer.SetPermissions(wanted, PermissionCheck.Conflicts);
            }

            return layer;
        }

        if (layer.FileName is null)
        {
            throw BlockException.NotSupported($"a {layer.DriverName} layer has no file to reopen");
        }

        var parent = ParentOf(layer);
        if (!isRoot && parent is not IBackedLayer)
        {
            throw BlockException.NotSupported($"'{layer.FileName}' cannot be reopened here: the layer above it cannot be re-pointed");
        }

        var current = wasReadOnly ? (isRoot ? NodePermissions.Reader : BackingPermissions) : NodePermissions.Writer;
        var options = new LayerOpenOptions { ReadOnly = readOnly, Direct = Direct };
        IBlockNode reopened;
        RequestGate.Drain drain;
        if (readOnly)
        {
            // What the old open wrote must be on the image before the new one reads it.
            drain = await Gate.DrainAsync(cancellationToken);
            try
            {
                await layer.FlushAsync(cancellationToken);
                reopened = await _opener.ReopenAsync(layer, current, wanted, options, cancellationToken);
            }
            catch
            {
                drain.Dispose();
                throw;
            }
        }
        else
        {
            // The new open takes over the locks of the old one, which holds the image until it is closed.
            reopened = await _opener.ReopenAsync(layer, current, wanted, options, cancellationToken);
            try
            {
                drain = await Gate.DrainAsync(cancellationToken);
            }
            catch
            {
                await reopened.DisposeAsync();
                layer.SetPermissions(current, PermissionCheck.Skip);
                throw;
            }
        }

        using (drain)
        {
            if (reopened is IBackedLayer backed)
            {
                backed.BackingEdge.Attach(layer.Backing);
            }

            if (isRoot)
            {
                Gate.ReplaceRoot(reopened, drain);
            }
            else
            {
                ((IBackedLayer)parent!).BackingEdge.Repoint(reopened, drain);
            }

            _chain.Replace(layer, reopened);
            Gate.StopFlushing(layer);
        }

        await layer.DisposeAsync();
        return reopened;
    }
}
