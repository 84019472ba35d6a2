using System.Security.Cryptography;
using Strata.Block;

namespace Strata.Backup.Tests;

public sealed class ChunkHashesTests
{
    [Fact]
    public async Task EachChunkHashesTheBytesTheDiskReadsThereAndTheLastOneIsShort()
    {
        await using var disk = new MemoryNode(10 * 1024);
        var data = new byte[3000];
        new Random(7).NextBytes(data);
        await disk.WriteAsync(5000, data);
        var expected = new byte[disk.Size];
        await disk.ReadAsync(0, expected);

        var hashes = new ChunkHashes(disk, 4096);
        var computed = await hashes.ComputeAsync(Enumerable.Range(0, hashes.Count));

        Assert.Equal(3, hashes.Count);
        Assert.Equal(new BackupExtent(8192, 2048), hashes.Extent(2));
        for (int i = 0; i < 3; i++)
        {
            var extent = hashes.Extent(i);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(expected.AsSpan((int)extent.Offset, (int)extent.Length))), computed[i]);
        }
    }

    [Fact]
    public async Task AZeroChunkHashesAsZeroes()
    {
        await using var disk = new MemoryNode(8192);

        var computed = await new ChunkHashes(disk, 4096).ComputeAsync([0, 1]);

        Assert.Equal(Manifests.ZeroHash(4096), computed[0]);
        Assert.Equal(Manifests.ZeroHash(4096), computed[1]);
    }

    [Fact]
    public async Task TheTouchedChunksAreThoseTheExtentsReachEachOnceInOrder()
    {
        await using var disk = new MemoryNode(64 * 1024);
        var hashes = new ChunkHashes(disk, 4096);

        var touched = hashes.Touched([new BackupExtent(100, 10), new BackupExtent(4000, 200), new BackupExtent(20000, 12288)]).ToList();

        Assert.Equal([0, 1, 4, 5, 6, 7], touched);
    }

    [Fact]
    public async Task WithLeavesAChunkHashesTheDigestsOfItsLeavesAndTheLastLeafIsShort()
    {
        await using var disk = new MemoryNode(10 * 1024 + 100);
        var data = new byte[3000];
        new Random(11).NextBytes(data);
        await disk.WriteAsync(5000, data);
        var expected = new byte[disk.Size];
        await disk.ReadAsync(0, expected);

        var hashes = new ChunkHashes(disk, 4096, 1024);
        var computed = await hashes.ComputeAsync(Enumerable.Range(0, hashes.Count));

        for (int i = 0; i < hashes.Count; i++)
        {
            var extent = hashes.Extent(i);
            var digests = new List<byte>();
            for (long at = extent.Offset; at < extent.Offset + extent.Length; at += 1024)
            {
                digests.AddRange(SHA256.HashData(expected.AsSpan((int)at, (int)Math.Min(1024, extent.Offset + extent.Length - at))));
            }

            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData([.. digests])), computed[i]);
        }
    }

    [Fact]
    public async Task LeavesInsideZeroRunsAreNotRead()
    {
        await using var disk = new MemoryNode(1 << 20);
        await disk.WriteAsync(300 * 1024, new byte[] { 1, 2, 3 });
        var hashes = new ChunkHashes(disk, 256 * 1024, 64 * 1024);

        await hashes.ComputeAsync(Enumerable.Range(0, hashes.Count));

        Assert.InRange(hashes.BytesRead, 1, 64 * 1024);
    }

    [Fact]
    public async Task HashingSomeLeavesAgainOverTheOthersGivesTheChunksHashOfTheWholeDisk()
    {
        await using var disk = new MemoryNode(1 << 20);
        var data = new byte[1 << 20];
        new Random(3).NextBytes(data);
        await disk.WriteAsync(0, data);
        var hashes = new ChunkHashes(disk, 256 * 1024, 16 * 1024);
        var before = await hashes.LeafDigestsAsync(1);

        await disk.WriteAsync(300 * 1024, new byte[20 * 1024]);
        var after = (byte[])before.Clone();
        await hashes.HashLeavesAsync(18, 3, after.AsMemory(2 * ChunkHashes.DigestSize));

        Assert.Equal((await hashes.ComputeAsync([1]))[1], ChunkHashes.Combine(after));
        Assert.NotEqual(ChunkHashes.Combine(before), ChunkHashes.Combine(after));
    }
}
