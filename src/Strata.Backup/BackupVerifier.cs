using Strata.Block;
using Strata.Formats;
using Strata.Formats.Qcow2;

namespace Strata.Backup;

/// <summary>
/// Checks points against their manifests by reading only the images: every chunk of the disk view
/// a point restores is hashed again and compared with the recorded SHA-256. A point is opened the
/// way <c>qemu-img convert</c> would open it (its image and the backing chain its header records), so
/// a flipped byte in any image of the chain shows in every point that reads it.
/// </summary>
public static class BackupVerifier
{
    public static Task<VerifyReport> VerifyAsync(BackupSet set, BackupManifest point, Action<long>? done = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        return VerifyAsync(token => OpenPointAsync(set, point, token), point, done, cancellationToken);
    }

    /// <summary>As above, for a point that <paramref name="openPoint"/> opens (a store's: a folder, an S3 bucket).</summary>
    public static async Task<VerifyReport> VerifyAsync(Func<CancellationToken, Task<IBlockNode>> openPoint, BackupManifest point, Action<long>? done = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(openPoint);
        ArgumentNullException.ThrowIfNull(point);
        try
        {
            await using var top = await openPoint(cancellationToken);
            if (top.Size != point.Size)
            {
                return new VerifyReport(point.Point, [], $"{point.Image} is {top.Size} bytes, the manifest says {point.Size}");
            }

            string? recordedBacking = (top as IBackingFileRecord)?.BackingFileName;
            if (recordedBacking != point.Backing)
            {
                return new VerifyReport(point.Point, [], $"{point.Image} has backing file '{recordedBacking}', the manifest says '{point.Backing}'");
            }

            var hashes = new ChunkHashes(top, point.ChunkSize, point.LeafSize ?? 0);
            var actual = await hashes.ComputeAsync(Enumerable.Range(0, hashes.Count), done, cancellationToken);
            var mismatches = Enumerable.Range(0, hashes.Count)
                .Where(i => actual[i] != point.Chunks[i])
                .Select(i => new ChunkMismatch(point.Point, hashes.Extent(i), point.Chunks[i], actual[i]))
                .ToList();
            return new VerifyReport(point.Point, mismatches, null);
        }
        catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException or BackupException)
        {
            return new VerifyReport(point.Point, [], e.Message);
        }
    }

    /// <summary>Opens a point's image and its backing chain read-only (sharing: a restore or a verify may run at the same time).</summary>
    public static async Task<IBlockNode> OpenPointAsync(BackupSet set, BackupManifest point, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(point);
        string path = set.ImagePath(point.Point);
        if (!File.Exists(path))
        {
            throw new BackupException($"{point.Image}: missing from the set");
        }

        return await ImageOpener.OpenAsync(path, new ImageOpenOptions
        {
            Format = Qcow2FormatDriver.FormatName, ReadOnly = true, Permissions = BitmapFileReader.SharedReading,
        }, cancellationToken);
    }
}
