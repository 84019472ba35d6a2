namespace Strata.Block;

/// <summary>A protocol node that knows how many bytes its storage really uses (a sparse file's blocks).</summary>
public interface IAllocatedSize
{
    long AllocatedBytes();
}
