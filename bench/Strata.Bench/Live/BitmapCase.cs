namespace Strata.Bench.Live;

/// <summary>
/// One row of the bitmap benchmarks: how many dirty bitmaps record the guest's writes, at which
/// granularity, and whether each is a crash-safe dirty_bitmap file (Strata only: QEMU has none).
/// </summary>
internal sealed record BitmapCase(string Label, int Count, long Granularity, bool File)
{
    public static readonly BitmapCase None = new("none", 0, 0, false);
    public static readonly BitmapCase NoneAgain = new("none again (control)", 0, 0, false);

    public static readonly BitmapCase[] All =
    [
        None,
        new("1 × 64 KiB", 1, 64 * 1024, false),
        new("4 × 64 KiB", 4, 64 * 1024, false),
        new("1 × 4 KiB", 1, 4096, false),
        new("4 × 4 KiB", 4, 4096, false),
        new("1 × 64 KiB, crash-safe file", 1, 64 * 1024, true),
        new("4 × 64 KiB, crash-safe file", 4, 64 * 1024, true),
        new("1 × 4 KiB, crash-safe file", 1, 4096, true),
        new("4 × 4 KiB, crash-safe file", 4, 4096, true),
        NoneAgain,
    ];
}
