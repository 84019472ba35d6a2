namespace Strata.Block.Bitmaps;

/// <summary>
/// A layer that stores persistent bitmaps inside its image (qcow2's bitmaps extension): a capability
/// of a format node, asked for with a type test, so that the drive keeps a persistent bitmap in the
/// image without knowing the format.
/// </summary>
/// <remarks>
/// Names are unique per image (1 to 1023 bytes of UTF-8, qcow2.txt). Stores returned here belong to
/// the caller, who disposes them before the layer; a layer opened read-only lists and loads, but
/// <see cref="CreateBitmapAsync"/> and the stores' writing calls throw
/// <see cref="BlockError.ReadOnly"/>.
/// </remarks>
public interface IBitmapHost
{
    /// <summary>The bitmaps stored in the image, as its directory says.</summary>
    IReadOnlyList<StoredBitmapInfo> StoredBitmaps { get; }

    /// <summary>The store of the bitmap <paramref name="name"/>; a <see cref="BlockException"/> (<see cref="BlockError.InvalidArgument"/>) when there is none.</summary>
    IBitmapStore OpenBitmap(string name);

    /// <summary>Adds an empty bitmap to the image's directory (durably) and returns its store.</summary>
    ValueTask<IBitmapStore> CreateBitmapAsync(string name, long granularity, bool enabled, CancellationToken cancellationToken = default);
}
