namespace Strata.Block.Bitmaps;

/// <summary>One bitmap a merge reads: a bitmap of <paramref name="Drive"/> named <paramref name="Name"/> (QEMU's BlockDirtyBitmapOrStr).</summary>
public readonly record struct BitmapSource(Drive Drive, string Name);
