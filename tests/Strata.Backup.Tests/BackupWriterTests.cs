using Strata.Block.Bitmaps;
using Strata.Formats;
using Strata.Formats.DirtyBitmaps;
using Strata.TestKit;

namespace Strata.Backup.Tests;

/// <summary>
/// A point hashed from the copy's own buffers against the same point hashed by reading every leaf
/// back (the way before): the same seeded disks give byte-identical chunk hashes and leaf files,
/// every point verifies, and only the leaves the copy did not cover whole are read back.
/// </summary>
public sealed class BackupWriterTests
{
    private const int Leaf = 64 * 1024;
    private const int Chunk = 1 << 20;
    private const int Granularity = 4096;

    /// <summary>Not a multiple of a leaf nor of a sector: the last chunk and the last leaf are short.</summary>
    private const long Size = (24L << 20) + (5 * 4096) + 777;

    [Fact]
    public async Task AFullPointHashedFromTheCopyIsTheOneReadBackBitForBitAndReadsNothingBack()
    {
        int seed = Workload.NewSeed();
        using var folder = new TempFolder("bwriter");
        string disk = folder.File("disk.img");
        WriteSparseDisk(disk, new Random(seed));

        var (fromCopy, readBack) = await BackupBothWaysAsync(folder, disk, bitmap: null);

        await AssertSamePointAsync(fromCopy, readBack, seed);
        Assert.True(fromCopy.BytesHashed == 0, $"seed {seed}: {fromCopy.BytesHashed} bytes read back");
        Assert.True(readBack.BytesHashed > 0, $"seed {seed}: reading back read nothing: the test shows nothing");
    }

    [Fact]
    public async Task AnIncrementalHashedFromTheCopyIsTheOneReadBackBitForBitAndReadsBackOnlyTheLeavesItsExtentsStartOrEndInside()
    {
        int seed = Workload.NewSeed();
        using var folder = new TempFolder("bwriter");
        string disk = folder.File("disk.img");
        await File.WriteAllBytesAsync(disk, Workload.Pattern(new Random(seed), (int)Size));
        var files = new DirtyBitmapFiles(StandardDrivers.Registry);
        var tracker = await files.CreateAsync(folder.File("t0.dbmp"), Size, Granularity);
        await tracker.BeginTrackingAsync();
        await BackupBothWaysAsync(folder, disk, bitmap: null);
        var bits = new DirtyBitmap(Size, Granularity);
        await using (var node = await ImageOpener.OpenAsync(disk, new ImageOpenOptions { Format = "raw", ReadOnly = false }))
        {
            foreach (var op in Workload.Generate(seed, Size, 40, alignment: Granularity, maxLength: 320 * 1024))
            {
                await op.ApplyAsync(node);
                if (op.Kind != DiskOpKind.Flush)
                {
                    bits.Set(op.Offset, op.Length);
                }
            }
        }

        await tracker.SaveAsync(bits, BitmapStoreState.Frozen);
        await tracker.DisposeAsync();

        var (fromCopy, readBack) = await BackupBothWaysAsync(folder, disk, folder.File("t0.dbmp"));

        Assert.True(fromCopy.Manifest.Kind == BackupKind.Incremental, $"seed {seed}: {fromCopy.Manifest.Fallback}");
        await AssertSamePointAsync(fromCopy, readBack, seed);
        Assert.True(fromCopy.ChunksReadWhole == 0 && readBack.ChunksReadWhole == 0, $"seed {seed}: the previous leaf file was not used");
        long partial = PartialLeafBytes(fromCopy.Manifest.Extents);
        Assert.True(partial == fromCopy.BytesHashed, $"seed {seed}: {fromCopy.BytesHashed} bytes read back, the partial leaves hold {partial}");
        Assert.True(readBack.BytesHashed > partial, $"seed {seed}: reading back read {readBack.BytesHashed} bytes only: the test shows nothing");
    }

    /// <summary>The same point made in two sets: its leaves hashed from the copy, and read back.</summary>
    private static async Task<(BackupResult FromCopy, BackupResult ReadBack)> BackupBothWaysAsync(TempFolder folder, string disk, string? bitmap)
    {
        var request = new BackupRequest { Image = disk, Bitmap = bitmap, ChunkSize = Chunk, LeafSize = Leaf };
        var fromCopy = await BackupWriter.CreateAsync(folder.File("copied"), request, hashFromCopy: true, null, CancellationToken.None);
        var readBack = await BackupWriter.CreateAsync(folder.File("read-back"), request, hashFromCopy: false, null, CancellationToken.None);
        return (fromCopy, readBack);
    }

    private static async Task AssertSamePointAsync(BackupResult fromCopy, BackupResult readBack, int seed)
    {
        int point = fromCopy.Manifest.Point;
        Assert.Equal(readBack.Manifest.Extents, fromCopy.Manifest.Extents);
        Assert.True(readBack.Manifest.Chunks.SequenceEqual(fromCopy.Manifest.Chunks), $"seed {seed}: point {point}'s chunk hashes differ");
        Assert.True(File.ReadAllBytes(readBack.Set.LeavesPath(point)).AsSpan().SequenceEqual(File.ReadAllBytes(fromCopy.Set.LeavesPath(point))),
            $"seed {seed}: point {point}'s leaf files differ");
        foreach (var set in new[] { fromCopy.Set, readBack.Set })
        {
            foreach (var manifest in set.Points)
            {
                var report = await BackupVerifier.VerifyAsync(set, manifest);
                Assert.True(report.Ok, $"seed {seed}: point {manifest.Point} of {set.Folder} fails verify: {report.Problem} {string.Join(' ', report.Mismatches)}");
            }
        }
    }

    /// <summary>
    /// A sparse raw disk: holes, runs of data and runs written as zero bytes, at 4 KiB offsets. The
    /// first run is longer than a copy chunk and starts inside a leaf, so the copy's chunks end inside
    /// leaves; the last reaches the disk's short end.
    /// </summary>
    private static void WriteSparseDisk(string path, Random random)
    {
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        file.SetLength(Size);
        var runs = new List<(long Offset, int Length)> { (3 * 4096, (5 << 20) + 4096), (Size - 100_000, 100_000) };
        for (int i = 0; i < 12; i++)
        {
            long offset = random.NextInt64(0, Size / 4096) * 4096;
            runs.Add((offset, (int)Math.Min(random.Next(1, 96) * 4096, Size - offset)));
        }

        foreach (var (offset, length) in runs)
        {
            file.Position = offset;
            file.Write(random.Next(4) == 0 ? new byte[length] : Workload.Pattern(random, length));
        }
    }

    /// <summary>Bytes of the leaves an extent reaches that no extent holds whole: what reading back is left with.</summary>
    private static long PartialLeafBytes(IReadOnlyList<BackupExtent> extents)
    {
        var partial = new HashSet<long>();
        foreach (var extent in extents)
        {
            for (long leaf = extent.Offset / Leaf; leaf * Leaf < extent.Offset + extent.Length; leaf++)
            {
                long start = leaf * Leaf;
                long end = Math.Min(Size, start + Leaf);
                if (!extents.Any(e => e.Offset <= start && end <= e.Offset + e.Length))
                {
                    partial.Add(leaf);
                }
            }
        }

        return partial.Sum(leaf => Math.Min(Size, (leaf + 1) * Leaf) - (leaf * Leaf));
    }
}
