namespace Strata.Block.Graph;

/// <summary>
/// The link from a layer to the node its unallocated ranges read from (QEMU's BdrvChild in the
/// "backing" role): an object of its own, so the engine re-points it without knowing the driver.
/// </summary>
/// <remarks>
/// Ownership is said once, when the node is attached. An edge attached with <c>owns: true</c> closes
/// its node when its layer closes: an opener hands a whole chain to a one-shot user that way (the
/// user closes the top, the chain follows). Every other edge only points: whoever opened the node
/// closes it (a <see cref="LayerChain"/>, which a drive holds). A drive adopts a chain before it
/// serves it (<see cref="LayerChain.Adopt"/>), so no edge inside a drive owns its node, and a
/// re-pointed edge never does: its old node is closed by its owner, never behind its back.
/// </remarks>
public sealed class BackingEdge
{
    // Read by every request that falls through to the backing node; changed only before the layer
    // serves requests (Attach) or under a drain of the drive that serves it (Repoint).
    private IBlockNode? _node;

    /// <summary>The node below, if any.</summary>
    public IBlockNode? Node => Volatile.Read(ref _node);

    /// <summary>True when closing the layer closes <see cref="Node"/> too.</summary>
    public bool OwnsNode { get; private set; }

    /// <summary>
    /// Sets the node below while the layer is being built, before it serves any request; with
    /// <paramref name="owns"/> the layer closes it when it closes. A node the edge owned is not
    /// closed here: whoever replaces it before the first request still holds it.
    /// </summary>
    public void Attach(IBlockNode? node, bool owns = false)
    {
        Volatile.Write(ref _node, node);
        OwnsNode = owns && node is not null;
    }

    /// <summary>
    /// Points a live layer at another node (null: none) under the drain of the drive that serves it,
    /// so no request sees half a change. The edge never owns what it is re-pointed to, and one that
    /// owns its node refuses: its node would be closed with the layer, whoever else uses it.
    /// </summary>
    public void Repoint(IBlockNode? node, RequestGate.Drain proofOfDrain)
    {
        ArgumentNullException.ThrowIfNull(proofOfDrain);
        if (OwnsNode)
        {
            throw new InvalidOperationException("this backing edge owns its node: adopt the chain before re-pointing it");
        }

        Volatile.Write(ref _node, node);
    }

    /// <summary>Gives up ownership of the node, which stays attached; returns it when the edge owned it (null otherwise).</summary>
    public IBlockNode? Release()
    {
        if (!OwnsNode)
        {
            return null;
        }

        OwnsNode = false;
        return Node;
    }

    /// <summary>Called by the layer as it closes: closes the node below only when this edge owns it.</summary>
    public async ValueTask CloseAsync()
    {
        if (Release() is { } owned)
        {
            await owned.DisposeAsync();
        }
    }
}
