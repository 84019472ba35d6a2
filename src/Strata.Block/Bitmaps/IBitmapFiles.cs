namespace Strata.Block.Bitmaps;

/// <summary>
/// Opens and creates dirty_bitmap files (docs/formats/dirty-bitmap.md): the seam through which the
/// drive, which lives in the engine, gets a file-backed <see cref="IBitmapStore"/> without knowing
/// the file format. Implemented in Strata.Formats; tests may give an in-memory one.
/// </summary>
/// <remarks>
/// A store opened here is for tracking: it takes the file's lock so that no second tracker (another
/// daemon, another drive) can use the same file at once, and refuses a file another process
/// tracks with <see cref="BlockError.Locked"/>. A file whose disk size or granularity cannot be
/// used by the caller is the caller's to refuse.
/// </remarks>
public interface IBitmapFiles
{
    bool Exists(string path);

    /// <summary>Opens an existing bitmap file for tracking.</summary>
    ValueTask<IBitmapStore> OpenAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Creates a new, empty, consistent bitmap file (refusing an existing path) and opens it for tracking.</summary>
    ValueTask<IBitmapStore> CreateAsync(string path, long diskSize, long granularity, CancellationToken cancellationToken = default);
}
