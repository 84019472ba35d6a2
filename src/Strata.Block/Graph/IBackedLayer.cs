namespace Strata.Block.Graph;

/// <summary>
/// A layer whose unallocated ranges read from a backing node through a <see cref="BackingEdge"/>
/// (a qcow2 image, an overlay held in memory): the graph operations re-point it without knowing the
/// driver. <see cref="IBlockNode.Backing"/> is the edge's node.
/// </summary>
public interface IBackedLayer : IBlockNode
{
    /// <summary>The edge to the node below; the layer reads <see cref="BackingEdge.Node"/> on every fall-through.</summary>
    BackingEdge BackingEdge { get; }
}
