namespace Strata.Block.Bitmaps;

/// <summary>What a <see cref="BitmapAction"/> does: QEMU's block-dirty-bitmap-* commands (qapi/block-core.json).</summary>
public enum BitmapActionKind
{
    Add,
    Remove,
    Clear,
    Enable,
    Disable,
    Merge,
}
