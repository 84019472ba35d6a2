using Strata.Block.Live;

namespace Strata.Block;

/// <summary>Walking a drive's chain and finding its layers (through <see cref="BlockChain"/>, the one walk).</summary>
public sealed partial class Drive
{
    /// <summary>The drive's top image, looking through the filter a live merge or a backup puts above it.</summary>
    public IBlockNode Top => Root switch
    {
        MirrorNode mirror => mirror.Overlay,
        Backup.CopyBeforeWriteNode filter => filter.Source,
        _ => Root,
    };

    /// <summary>Every layer of the chain, top first.</summary>
    public IEnumerable<IBlockNode> Layers() => Top.Layers();

    /// <summary>The full names of every image in the drive's chain, top first (<see cref="Graph.ILayerOpener.FullName"/>).</summary>
    public IReadOnlyList<string> ChainFiles() =>
        Top.Layers().Where(n => n.FileName is not null).Select(n => _opener.FullName(n.FileName!)).ToList();

    /// <summary>
    /// The layer named <paramref name="name"/>: the top when it is the drive's own name (its node name
    /// in query-block), else the first layer whose file is <paramref name="name"/> (null: none).
    /// </summary>
    public IBlockNode? FindLayer(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return name == Id ? Top : Top.FindByFile(_opener.FullName(name), _opener.FullName);
    }

    /// <summary>The image directly above <paramref name="node"/> in the chain (null: it is the top).</summary>
    public IBlockNode? ParentOf(IBlockNode node) => Top.ParentOf(node);
}
