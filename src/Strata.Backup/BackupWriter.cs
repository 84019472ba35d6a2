using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Block.Copy;
using Strata.Block.Drivers;
using Strata.Formats;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;

namespace Strata.Backup;

/// <summary>
/// Adds a point to a backup set from an image and, for an incremental, a bitmap file: a new qcow2
/// (on the previous point for an incremental), the copy through the engine's copy loop
/// (<see cref="BlockCopy"/>: a full copy skips zero runs, an incremental copies the bitmap's dirty
/// extents), the image flushed and closed, the chunk hashes of the new disk view (only the chunks
/// the copy touched are read; the others come from the previous manifest), then the manifest.
/// </summary>
/// <remarks>
/// The order makes a point all or nothing: until the manifest is renamed into place the point does
/// not exist, a failure removes the new image, and a crash leaves only files the next run removes
/// (<see cref="BackupSet.RemoveHalfMade"/>).
/// </remarks>
public static class BackupWriter
{
    public static async Task<BackupResult> CreateAsync(string setFolder, BackupRequest request, Action<double>? percent = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var set = BackupSet.Open(setFolder, create: true);
        var removed = set.RemoveHalfMade();
        await using var source = await OpenSourceAsync(request.Image, cancellationToken);
        BitmapReading? bitmap = null;
        string? problem = null;
        if (request.Bitmap is not null)
        {
            (bitmap, problem) = await BitmapFileReader.TryReadAsync(request.Bitmap, request.BitmapName, cancellationToken);
        }

        var plan = IncrementalRule.Decide(set.Last, source.Size, request.Bitmap, bitmap, problem);
        var tracking = await TrackingAsync(request, source.Size, cancellationToken);
        int point = set.Points.Count;
        string imagePath = set.ImagePath(point);
        var last = set.Last;
        bool incremental = plan.Kind == BackupKind.Incremental;
        var extents = incremental
            ? bitmap!.Bits.DirtyRuns().Select(r => new BackupExtent(r.Offset, Math.Min(r.Length, source.Size - r.Offset))).ToList()
            : source.Size > 0 ? [new BackupExtent(0, source.Size)] : new List<BackupExtent>();
        int chunkSize = incremental ? last!.ChunkSize : request.ChunkSize;
        string? backing = incremental ? BackupSet.ImageName(point - 1) : null;

        if (backing is not null && !File.Exists(set.ImagePath(point - 1)))
        {
            throw new BackupException($"the base of an incremental, point {point - 1} ({backing}), is missing from the set: refused");
        }

        IReadOnlyList<string> chunks;
        long copied;
        await CreateImageAsync(imagePath, source.Size, backing, cancellationToken);
        try
        {
            (chunks, copied) = await CopyAndHashAsync(source, imagePath, request.Drivers, incremental, extents, last, chunkSize, percent, cancellationToken);
        }
        catch
        {
            File.Delete(imagePath);
            throw;
        }

        var manifest = new BackupManifest
        {
            Point = point,
            Time = request.Clock.GetUtcNow(),
            Kind = plan.Kind,
            Image = BackupSet.ImageName(point),
            Backing = backing,
            Size = source.Size,
            Source = new BackupSource(Path.GetFullPath(request.Image), request.Drive),
            Bitmap = bitmap?.Record ?? (request.Bitmap is null ? null : new BackupBitmap(Path.GetFullPath(request.Bitmap), request.BitmapName, 0, 0, "unreadable")),
            Fallback = plan.Fallback,
            Tracking = tracking,
            Extents = extents,
            ChunkSize = chunkSize,
            Chunks = chunks,
        };
        return new BackupResult(set.Commit(manifest), manifest, removed, copied);
    }

    /// <summary>Opens the image to back up: read-only, sharing everything (a daemon may hold it, frozen, below a snapshot).</summary>
    public static async Task<IBlockNode> OpenSourceAsync(string path, CancellationToken cancellationToken)
    {
        IBlockNode node;
        try
        {
            node = await ImageOpener.OpenAsync(path, new ImageOpenOptions
            {
                // A bitmap file is let through to be refused below with the hint the user needs.
                ReadOnly = true, Permissions = BitmapFileReader.SharedReading, ForceShare = true, AllowNonDisk = true,
            }, cancellationToken);
        }
        catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException)
        {
            throw new BackupException($"{path}: {e.Message}", e);
        }

        if (node is IBitmapImage)
        {
            await node.DisposeAsync();
            throw new BackupException($"{path}: a dirty_bitmap file is not a disk image (give it with --bitmap)");
        }

        return node;
    }

    private static async Task<IReadOnlyList<BackupBitmap>> TrackingAsync(BackupRequest request, long diskSize, CancellationToken cancellationToken)
    {
        if (request.Tracking is null)
        {
            string folder = Path.GetDirectoryName(Path.GetFullPath(request.Bitmap ?? request.Image))!;
            return await BitmapFileReader.FindTrackedAsync(folder, diskSize, cancellationToken);
        }

        var found = new List<BackupBitmap>();
        foreach (string file in request.Tracking)
        {
            var (reading, problem) = await BitmapFileReader.TryReadAsync(file, Path.GetFileNameWithoutExtension(file), cancellationToken);
            found.Add(reading?.Record ?? throw new BackupException($"{file}: cannot be read ({problem})"));
        }

        return found;
    }

    private static async Task CreateImageAsync(string path, long size, string? backing, CancellationToken cancellationToken)
    {
        try
        {
            var plan = await ImageCreator.PlanAsync(path, Qcow2FormatDriver.FormatName, size, backing, backing is null ? null : Qcow2FormatDriver.FormatName, [], cancellationToken);
            await ImageCreator.CreateAsync(plan, FileCreation.New, cancellationToken);
        }
        catch (BlockException e)
        {
            throw new BackupException($"{path}: cannot create the point's image: {e.Message}", e);
        }
    }

    private static async Task<(IReadOnlyList<string> Chunks, long Copied)> CopyAndHashAsync(IBlockNode source, string imagePath, DriverRegistry drivers, bool incremental,
        List<BackupExtent> extents, BackupManifest? last, int chunkSize, Action<double>? percent, CancellationToken cancellationToken)
    {
        IBlockNode target = await ImageOpener.OpenAsync(imagePath, new ImageOpenOptions { Format = Qcow2FormatDriver.FormatName, ReadOnly = false, Drivers = drivers }, cancellationToken);
        await using (target)
        {
            var copy = new BlockCopy(ChainView.Whole(source), target, new BlockCopyOptions { TargetIsZero = !incremental, DetectZeroes = true });
            var copyPlan = await copy.PlanAsync(extents.Select(e => new CopyRange(e.Offset, e.Length)), cancellationToken);
            var hashes = new ChunkHashes(target, chunkSize);
            var touched = incremental ? hashes.Touched(extents).ToList() : Enumerable.Range(0, hashes.Count).ToList();
            var progress = new BackupProgress(copyPlan.TotalBytes, touched.Sum(i => hashes.Extent(i).Length), percent);
            await copy.RunAsync(copyPlan, progress.Copying, cancellationToken);
            await target.FlushAsync(cancellationToken);
            var computed = await hashes.ComputeAsync(touched, progress.Hashed, cancellationToken);
            var chunks = Enumerable.Range(0, hashes.Count).Select(i => computed.TryGetValue(i, out string? h) ? h : last!.Chunks[i]).ToList();
            return (chunks, copyPlan.TotalBytes);
        }
    }
}
