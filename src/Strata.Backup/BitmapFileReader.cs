using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Formats;
using Strata.Formats.DirtyBitmaps;

namespace Strata.Backup;

/// <summary>
/// Reads dirty_bitmap files for a backup: read-only, sharing everything (a daemon may be tracking
/// them), through the format's registered driver (docs/formats/dirty-bitmap.md).
/// </summary>
public static class BitmapFileReader
{
    /// <summary>What a reader of an image another process uses holds: consistent reads, everything shared (qemu-img -U).</summary>
    public static NodePermissions SharedReading { get; } = new(BlockPermissions.ConsistentRead, BlockPermissions.All);

    /// <summary>Reads <paramref name="path"/>; a missing or unreadable file gives the reason instead.</summary>
    public static async Task<(BitmapReading? Reading, string? Problem)> TryReadAsync(string path, string? name = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            return (null, "no such file");
        }

        try
        {
            await using var node = await ImageOpener.OpenAsync(path, new ImageOpenOptions
            {
                Format = DirtyBitmapFormatDriver.FormatName, ReadOnly = true, Permissions = SharedReading, ForceShare = true, AllowNonDisk = true,
            }, cancellationToken);
            if (node is not IBitmapImage image)
            {
                return (null, "not a dirty_bitmap file");
            }

            var bits = image.Bits;
            string state = image.State switch
            {
                BitmapStoreState.Consistent => "consistent",
                BitmapStoreState.Frozen => "frozen",
                BitmapStoreState.Inconsistent => "inconsistent",
                _ => image.Tracked ? "active" : "in use",
            };
            bool complete = !image.Tracked && image.State is BitmapStoreState.Consistent or BitmapStoreState.Frozen;
            var lineage = image.Lineage;
            var record = new BackupBitmap(Path.GetFullPath(path), name, bits.Granularity, image.Generation, state, complete ? bits.Sha256() : null, lineage?.Id);
            return (new BitmapReading(record, bits.DiskSize, image.Tracked, image.State, bits, lineage), null);
        }
        catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException)
        {
            return (null, e.Message);
        }
    }

    /// <summary>
    /// The dirty_bitmap files in <paramref name="folder"/> that a tracker holds now and that describe
    /// a disk of <paramref name="diskSize"/> bytes: the candidates for the next incremental. Only
    /// files that start with the format's magic are opened.
    /// </summary>
    public static async Task<IReadOnlyList<BackupBitmap>> FindTrackedAsync(string folder, long diskSize, CancellationToken cancellationToken = default)
    {
        var found = new List<BackupBitmap>();
        foreach (string path in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
        {
            if (!HasMagic(path))
            {
                continue;
            }

            var (reading, _) = await TryReadAsync(path, null, cancellationToken);
            if (reading is { Tracked: true } && reading.DiskSize == diskSize)
            {
                found.Add(reading.Record);
            }
        }

        return found;
    }

    private static bool HasMagic(string path)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            Span<byte> start = stackalloc byte[16];
            int n = file.ReadAtLeast(start, start.Length, throwOnEndOfStream: false);
            return new DirtyBitmapFormatDriver().Probe(start[..n]) > 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
