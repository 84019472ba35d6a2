namespace Strata.Block.Copy;

/// <summary>A run of guest bytes a copy is asked to cover: all of an image, or the dirty extents of a bitmap.</summary>
public readonly record struct CopyRange(long Offset, long Length)
{
    public long End => Offset + Length;
}
