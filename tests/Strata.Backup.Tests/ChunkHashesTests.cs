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
}
