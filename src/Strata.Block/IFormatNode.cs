namespace Strata.Block;

/// <summary>
/// A format layer over a protocol node (QEMU's "file" child): the node holding the image's bytes,
/// owned by this one. Lets callers ask the storage about itself (its allocated size) without
/// knowing the format.
/// </summary>
public interface IFormatNode
{
    IBlockNode File { get; }
}
