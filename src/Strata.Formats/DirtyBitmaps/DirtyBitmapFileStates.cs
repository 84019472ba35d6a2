using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>Conversions between the file's states and the store contract's.</summary>
internal static class DirtyBitmapFileStates
{
    public static BitmapStoreState ToStoreState(this DirtyBitmapFileState state) => state switch
    {
        DirtyBitmapFileState.Consistent => BitmapStoreState.Consistent,
        DirtyBitmapFileState.Frozen => BitmapStoreState.Frozen,
        _ => BitmapStoreState.Active,
    };

    public static DirtyBitmapFileState ToFileState(this BitmapStoreState state) => state switch
    {
        BitmapStoreState.Consistent => DirtyBitmapFileState.Consistent,
        BitmapStoreState.Frozen => DirtyBitmapFileState.Frozen,
        _ => throw BlockException.Invalid($"a dirty_bitmap file can be saved Consistent or Frozen, not {state}"),
    };
}
