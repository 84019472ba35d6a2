namespace Strata.Backup;

/// <summary>A bitmap a <c>--drive</c> backup keeps on the drive: its name there and its dirty_bitmap file in SET/bitmaps.</summary>
/// <param name="Name">The bitmap's name on the drive.</param>
/// <param name="File">Its file's full path.</param>
public sealed record ManagedBitmap(string Name, string File);
