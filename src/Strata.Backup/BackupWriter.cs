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
/// extents), the image flushed and closed, the chunk hashes of the new disk view (<see cref="PointHashing"/>:
/// the leaves the copy covers are hashed from its own buffers as it writes them, and only the leaves
/// an extent starts or ends inside are read back), the leaf file, then the manifest.
/// </summary>
/// <remarks>
/// The order makes a point all or nothing: until the manifest is renamed into place the point does
/// not exist, a failure removes the new image, and a crash leaves only files the next run removes
/// (<see cref="BackupSet.RemoveHalfMade"/>).
/// </remarks>
public static class BackupWriter
{
    public static Task<BackupResult> CreateAsync(string setFolder, BackupRequest request, Action<double>? percent = null,
        CancellationToken cancellationToken = default) =>
        CreateAsync(setFolder, request, hashFromCopy: true, percent, cancellationToken);

    /// <param name="hashFromCopy">false: every leaf is read back after the copy, as before the copy's digests were used (the tests compare both).</param>
    internal static async Task<BackupResult> CreateAsync(string setFolder, BackupRequest request, bool hashFromCopy, Action<double>? percent,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var phases = new BackupPhases(request.Phases);
        var set = BackupSet.Open(setFolder, create: true);
        var removed = set.RemoveHalfMade();
        await using var source = await OpenSourceAsync(request.Image, cancellationToken);
        BitmapReading? bitmap = null;
        string? problem = null;
        if (request.Bitmap is not null)
        {
            (bitmap, problem) = await BitmapFileReader.TryReadAsync(request.Bitmap, request.BitmapName, cancellationToken);
        }

        var plan = request.Bitmap is null && set.Last is not null && request.FullReason is not null
            ? BackupPlan.Full(request.FullReason)
            : IncrementalRule.Decide(set.Last, source.Size, request.Bitmap, bitmap, problem, request.Carried);
        var tracking = await TrackingAsync(request, source.Size, cancellationToken);
        int point = set.Points.Count;
        string imagePath = set.ImagePath(point);
        var last = set.Last;
        bool incremental = plan.Kind == BackupKind.Incremental;
        var extents = incremental
            ? bitmap!.Bits.DirtyRuns().Select(r => new BackupExtent(r.Offset, Math.Min(r.Length, source.Size - r.Offset))).ToList()
            : source.Size > 0 ? [new BackupExtent(0, source.Size)] : new List<BackupExtent>();
        int chunkSize = incremental ? last!.ChunkSize : request.ChunkSize;
        int leafSize = incremental ? last!.LeafSize ?? 0 : request.LeafSize;
        string? backing = incremental ? BackupSet.ImageName(point - 1) : null;

        if (backing is not null && !File.Exists(set.ImagePath(point - 1)))
        {
            throw new BackupException($"the base of an incremental, point {point - 1} ({backing}), is missing from the set: refused");
        }

        HashedPoint hashed;
        phases.Lap("open and plan", $"{extents.Count} extent(s)");
        await CreateImageAsync(imagePath, source.Size, backing, cancellationToken);
        try
        {
            hashed = await CopyAndHashAsync(set, point, source, imagePath, request.Drivers, (incremental, hashFromCopy), extents, last, (chunkSize, leafSize), percent, phases,
                cancellationToken);
        }
        catch
        {
            File.Delete(imagePath);
            File.Delete(set.LeavesPath(point));
            throw;
        }

        var manifest = new BackupManifest
        {
            Version = leafSize > 0 ? BackupManifest.CurrentVersion : BackupManifest.VersionWithoutLeaves,
            Point = point,
            Time = request.Clock.GetUtcNow(),
            Kind = plan.Kind,
            Image = BackupSet.ImageName(point),
            Backing = backing,
            Size = source.Size,
            Source = new BackupSource(ImageOpener.FullName(request.Image), request.Drive),
            Bitmap = bitmap?.Record ?? (request.Bitmap is null ? null : new BackupBitmap(Path.GetFullPath(request.Bitmap), request.BitmapName, 0, 0, "unreadable")),
            Fallback = plan.Fallback,
            Tracking = tracking,
            Extents = extents,
            ChunkSize = chunkSize,
            LeafSize = leafSize > 0 ? leafSize : null,
            Chunks = hashed.Chunks,
        };
        var committed = set.Commit(manifest);
        RemoveOlderLeaves(set, point);
        phases.Lap("manifest");
        return new BackupResult(committed, manifest, removed, hashed.Copied) { BytesHashed = hashed.BytesRead, ChunksReadWhole = hashed.ChunksReadWhole };
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

    /// <remarks>
    /// The leaf file is begun before the copy: the copy writes the digests of the leaves it covers
    /// into it as it goes, once <see cref="PointHashing"/> has checked the previous point's digests
    /// there. The copy writes exactly the bytes it hands over (a run found to read as zeroes is handed
    /// over as zeroes, written as such or not at all over the new full point, which reads as zeroes).
    /// </remarks>
    private static async Task<HashedPoint> CopyAndHashAsync(BackupSet set, int point, IBlockNode source, string imagePath, DriverRegistry drivers,
        (bool Incremental, bool HashFromCopy) how, List<BackupExtent> extents, BackupManifest? last, (int Chunk, int Leaf) sizes, Action<double>? percent,
        BackupPhases phases, CancellationToken cancellationToken)
    {
        IBlockNode target = await ImageOpener.OpenAsync(imagePath, new ImageOpenOptions { Format = Qcow2FormatDriver.FormatName, ReadOnly = false, Drivers = drivers }, cancellationToken);
        await using (target)
        {
            var hashes = new ChunkHashes(target, sizes.Chunk, sizes.Leaf);
            using var leaves = sizes.Leaf == 0 ? null
                : LeafDigestFile.Begin(set.LeavesPath(point), how.Incremental ? set.LeavesPath(point - 1) : null, source.Size, sizes.Leaf);
            using var hashing = new PointHashing(hashes, last, extents, how.Incremental, leaves, how.HashFromCopy);
            var copy = new BlockCopy(ChainView.Whole(source), target,
                new BlockCopyOptions { TargetIsZero = !how.Incremental, DetectZeroes = true, Observer = hashing.Observer });
            var copyPlan = await copy.PlanAsync(extents.Select(e => new CopyRange(e.Offset, e.Length)), cancellationToken);
            var progress = new BackupProgress(copyPlan.TotalBytes, hashing.PlannedBytes, percent);
            phases.Lap("create the image and plan the copy");
            await copy.RunAsync(copyPlan, progress.Copying, cancellationToken);
            await target.FlushAsync(cancellationToken);
            phases.Lap("copy and flush", $"{copyPlan.TotalBytes} bytes, {hashing.Observer?.BytesHashed ?? 0} bytes of data hashed from the copy");
            var chunks = await hashing.ComputeAsync(progress.Hashed, cancellationToken);
            leaves?.Commit();
            phases.Lap("hash", $"{hashing.Chunks.Count} chunk(s), {hashes.BytesRead} bytes read back, {hashing.ChunksReadWhole} chunk(s) not vouched for by the previous leaf file");
            return new HashedPoint(chunks, copyPlan.TotalBytes, hashes.BytesRead, hashing.ChunksReadWhole);
        }
    }

    /// <summary>Deletes the leaf files of the points before <paramref name="point"/>: only the newest point's is ever used.</summary>
    private static void RemoveOlderLeaves(BackupSet set, int point)
    {
        for (int i = point - 1; i >= 0 && File.Exists(set.LeavesPath(i)); i--)
        {
            File.Delete(set.LeavesPath(i));
        }
    }
}
