using System.Security.Cryptography;
using Strata.Block;
using Strata.TestKit;

namespace Strata.Backup.Tests;

public sealed class CopiedLeavesTests
{
    private const int Leaf = 4096;

    /// <summary>Not a multiple of the leaf: the disk's last leaf is short.</summary>
    private const int Size = (40 * Leaf) + 1234;

    [Fact]
    public async Task RunsHeardInAnyOrderAndCutAnywhereGiveTheDigestOfEveryLeafInsideTheExtentsAndOfNoOther()
    {
        int seed = Workload.NewSeed();
        var random = new Random(seed);
        using var folder = new TempFolder("leaves");
        await using var disk = new MemoryNode(Size);
        var hashes = new ChunkHashes(disk, 8 * Leaf, Leaf);
        var extents = RandomExtents(random);
        var model = new byte[Size];
        using var file = LeafDigestFile.Begin(folder.File("0000.leaves"), null, Size, Leaf);
        using var copied = new CopiedLeaves(hashes, extents, file);

        // Each extent cut into runs at random bytes, each run data or zeroes, heard from two threads in a shuffled order.
        var runs = new List<(long Offset, int Length, byte[]? Data)>();
        foreach (var extent in extents)
        {
            for (long at = extent.Offset; at < extent.Offset + extent.Length;)
            {
                int length = (int)Math.Min(random.Next(1, 3 * Leaf), extent.Offset + extent.Length - at);
                byte[]? data = random.Next(3) == 0 ? null : Workload.Pattern(random, length);
                data?.CopyTo(model, at);
                runs.Add((at, length, data));
                at += length;
            }
        }

        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(runs));
        await Task.WhenAll(Enumerable.Range(0, 2).Select(worker => Task.Run(() =>
        {
            for (int i = worker; i < runs.Count; i += 2)
            {
                if (runs[i].Data is { } data)
                {
                    copied.Data(runs[i].Offset, data);
                }
                else
                {
                    copied.Zeroes(runs[i].Offset, runs[i].Length);
                }
            }
        })));

        var digest = new byte[ChunkHashes.DigestSize];
        for (long leaf = 0; leaf < hashes.LeafCount; leaf++)
        {
            bool inside = extents.Any(e => e.Offset <= leaf * Leaf && (leaf * Leaf) + hashes.LeafLength(leaf) <= e.Offset + e.Length);
            Assert.True(inside == copied.IsCovered(leaf), $"seed {seed}: leaf {leaf} inside the extents {inside}, covered {copied.IsCovered(leaf)}");
            Assert.True(inside == copied.IsInside(leaf), $"seed {seed}: leaf {leaf} inside the extents {inside}, said {copied.IsInside(leaf)}");
            if (inside)
            {
                file.Read(leaf, digest);
                Assert.True(SHA256.HashData(model.AsSpan((int)(leaf * Leaf), hashes.LeafLength(leaf))).AsSpan().SequenceEqual(digest),
                    $"seed {seed}: leaf {leaf} has the wrong digest");
            }
        }
    }

    /// <summary>A few extents in disk order, apart from each other, starting and ending anywhere; the last may reach the disk's end.</summary>
    private static List<BackupExtent> RandomExtents(Random random)
    {
        var cuts = Enumerable.Range(0, random.Next(2, 10) * 2).Select(_ => random.NextInt64(0, Size + 1)).Distinct().Order().ToList();
        if (random.Next(2) == 0 && cuts.Count % 2 == 0)
        {
            cuts[^1] = Size;
        }

        var extents = new List<BackupExtent>();
        for (int i = 0; i + 1 < cuts.Count; i += 2)
        {
            extents.Add(new BackupExtent(cuts[i], cuts[i + 1] - cuts[i]));
        }

        return extents;
    }
}
