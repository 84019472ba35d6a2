using System.Buffers.Binary;
using Strata.Block;
using Strata.Formats.Qcow2;

namespace Strata.Formats.Tests;

public sealed class Qcow2HostileHeaderTests
{
    private static async Task<byte[]> ValidImageAsync(int clusterSize = 65536, long size = 1 << 30)
    {
        var file = new MemoryNode(0);
        await Qcow2Node.CreateAsync(file, new Qcow2CreateOptions { Size = size, ClusterSize = clusterSize });
        return file.ToArray();
    }

    private static async Task<MemoryNode> NodeOfAsync(byte[] image)
    {
        var file = new MemoryNode(image.Length);
        await file.WriteAsync(0, image);
        return file;
    }

    private static async Task<BlockException> OpenFailsAsync(byte[] image, bool readOnly = true)
        => await Assert.ThrowsAsync<BlockException>(async () => await Qcow2Node.OpenAsync(await NodeOfAsync(image), readOnly));

    [Theory]
    [InlineData(0, 0x12345678u, "magic")]
    [InlineData(4, 4u, "version 4")]
    [InlineData(20, 8u, "cluster_bits 8")]
    [InlineData(20, 22u, "cluster_bits 22")]
    [InlineData(32, 1u, "encrypted")]
    [InlineData(36, 0x00ffffffu, "l1_size")]
    [InlineData(36, 1u, "l1_size 1 is too small")]
    [InlineData(56, 0u, "refcount_table_clusters 0")]
    [InlineData(56, 100_000u, "refcount_table_clusters 100000")]
    [InlineData(60, 1_000_000u, "nb_snapshots")]
    [InlineData(96, 7u, "refcount_order 7")]
    [InlineData(100, 100u, "header_length 100")]
    [InlineData(100, 0x20000u, "header_length 131072")]
    [InlineData(16, 2000u, "backing_file_size")]
    public async Task HeaderFieldOutOfRangeIsRefusedNamingTheField(int offset, uint value, string expected)
    {
        var image = await ValidImageAsync();
        BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(offset), value);
        if (offset == 16)
        {
            BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(8), 0x1000);
        }

        var e = await OpenFailsAsync(image);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(40, 0x30100UL, "L1 table offset 0x30100 is not cluster-aligned")]
    [InlineData(40, 0x7000000000UL, "L1 table offset 0x7000000000")]
    [InlineData(48, 0x10200UL, "refcount table offset 0x10200 is not cluster-aligned")]
    [InlineData(48, 0x1000000000UL, "refcount table offset 0x1000000000")]
    [InlineData(24, 1UL << 62, "size")]
    [InlineData(8, 0xff00UL, "backing_file_offset")]
    public async Task HeaderOffsetOutOfRangeIsRefusedNamingTheField(int offset, ulong value, string expected)
    {
        var image = await ValidImageAsync();
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(offset), value);
        if (offset == 8)
        {
            BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(16), 0x200);
        }

        var e = await OpenFailsAsync(image);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Equal(BlockError.Corrupt, e.Error);
    }

    [Fact]
    public async Task OverlongHeaderExtensionIsRefused()
    {
        var image = await ValidImageAsync();
        BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(116), 0x7fffffff);
        var e = await OpenFailsAsync(image);
        Assert.Contains("header extension 0x6803f857 length", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(10, "unknown feature bit 10")]
    [InlineData(2, "external data file")]
    [InlineData(4, "extended L2")]
    public async Task IncompatibleFeatureIsRefusedByName(int bit, string expected)
    {
        var image = await ValidImageAsync();
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(72), 1UL << bit);
        var e = await OpenFailsAsync(image);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Equal(BlockError.NotSupported, e.Error);
    }

    [Fact]
    public async Task UnknownIncompatibleFeatureIsNamedFromTheImagesFeatureTable()
    {
        var image = await ValidImageAsync();
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(72), 1UL << 9);
        // Rename the table's first entry (incompatible bit 0) to describe bit 9.
        image[0x78 + 1] = 9;
        System.Text.Encoding.ASCII.GetBytes("time travel\0").CopyTo(image, 0x78 + 2);
        var e = await OpenFailsAsync(image);
        Assert.Contains("time travel", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CorruptImageOpensReadOnlyButNotReadWrite()
    {
        var image = await ValidImageAsync();
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(72), 2);
        var e = await OpenFailsAsync(image, readOnly: false);
        Assert.Contains("marked corrupt", e.Message, StringComparison.Ordinal);
        await using var node = await Qcow2Node.OpenAsync(await NodeOfAsync(image), readOnly: true);
        Assert.True(node.Info.Corrupt);
    }

    [Fact]
    public async Task L2EntryPointingPastTheFileFailsTheReadAsCorrupt()
    {
        var file = new MemoryNode(0);
        await Qcow2Node.CreateAsync(file, new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 4096 });
        await using (var node = await Qcow2Node.OpenAsync(file, readOnly: false))
        {
            await node.WriteAsync(0, new byte[4096]);
        }

        var image = file.ToArray();
        long l1 = BinaryPrimitives.ReadInt64BigEndian(image.AsSpan(40));
        long l2 = BinaryPrimitives.ReadInt64BigEndian(image.AsSpan((int)l1)) & 0x00ff_ffff_ffff_fe00L;
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan((int)l2), (1UL << 63) | 0x100000000UL);
        await using var hostile = await Qcow2Node.OpenAsync(await NodeOfAsync(image), readOnly: true);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await hostile.ReadAsync(0, new byte[512]));
        Assert.Equal(BlockError.Corrupt, e.Error);
        Assert.Contains("0x100000000", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WriteMeetingABadL2EntryMarksTheImageCorrupt()
    {
        var file = new MemoryNode(0);
        await Qcow2Node.CreateAsync(file, new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 4096 });
        await using (var node = await Qcow2Node.OpenAsync(file, readOnly: false))
        {
            await node.WriteAsync(0, new byte[4096]);
        }

        var image = file.ToArray();
        long l1 = BinaryPrimitives.ReadInt64BigEndian(image.AsSpan(40));
        long l2 = BinaryPrimitives.ReadInt64BigEndian(image.AsSpan((int)l1)) & 0x00ff_ffff_ffff_fe00L;
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan((int)l2), (1UL << 63) | 0x1234000UL);
        var damaged = await NodeOfAsync(image);
        await using (var node = await Qcow2Node.OpenAsync(damaged, readOnly: false))
        {
            var e = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, new byte[10]));
            Assert.Equal(BlockError.Corrupt, e.Error);
            var again = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(8192, new byte[10]));
            Assert.Contains("marked corrupt", again.Message, StringComparison.Ordinal);
        }

        Assert.Equal(2UL, BinaryPrimitives.ReadUInt64BigEndian(damaged.ToArray().AsSpan(72)) & 2UL);
        await Assert.ThrowsAsync<BlockException>(async () => await Qcow2Node.OpenAsync(damaged, readOnly: false));

        // check -r all: the bad entry stays (its cluster is outside the file), so the mark stays too.
        await using (var repairing = await Qcow2Node.OpenForRepairAsync(damaged))
        {
            var result = await repairing.CheckAsync(Qcow2RepairMode.All);
            Assert.True(result.Corruptions > 0);
            Assert.True(repairing.Info.Corrupt);
        }
    }

    [Fact]
    public async Task RepairOfAnImageMarkedCorruptButConsistentClearsTheMark()
    {
        var image = await ValidImageAsync();
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(72), 2);
        var file = await NodeOfAsync(image);
        await using (var node = await Qcow2Node.OpenForRepairAsync(file))
        {
            await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, new byte[1]));
            var result = await node.CheckAsync(Qcow2RepairMode.All);
            Assert.Equal(0, result.Corruptions);
            Assert.False(node.Info.Corrupt);
            await node.WriteAsync(0, new byte[1]);
        }

        await using var reopened = await Qcow2Node.OpenAsync(file, readOnly: false);
        Assert.False(reopened.Info.Corrupt);
    }

    [Fact]
    public async Task TruncatedFileIsRefused()
    {
        var image = await ValidImageAsync();
        var e = await OpenFailsAsync(image[..50]);
        Assert.Contains("too short", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RandomlyDamagedImagesFailOnlyWithBlockExceptions()
    {
        int seed = int.Parse(Environment.GetEnvironmentVariable("STRATA_FUZZ_SEED") ?? "1234");
        var file = new MemoryNode(0);
        await Qcow2Node.CreateAsync(file, new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 4096, BackingFile = "b.img" });
        await using (var node = await Qcow2Node.OpenAsync(file, readOnly: false))
        {
            await node.WriteAsync(0, Qcow2TestImage.Pattern(300_000, 1));
            await node.WriteZeroesAsync(400_000, 50_000);
        }

        var pristine = file.ToArray();
        var random = new Random(seed);
        for (int i = 0; i < 200; i++)
        {
            var image = (byte[])pristine.Clone();
            int damage = random.Next(1, 6);
            for (int d = 0; d < damage; d++)
            {
                // Mostly metadata: the header cluster and the tables after it.
                int at = random.Next(2) == 0 ? random.Next(512) : random.Next(Math.Min(image.Length, 6 * 4096));
                image[at] = (byte)random.Next(256);
            }

            try
            {
                await using var node = await Qcow2Node.OpenAsync(await NodeOfAsync(image), readOnly: true);
                node.BackingEdge.Attach(new MemoryNode(1 << 20), owns: true);
                var buffer = new byte[node.Size];
                await node.ReadAsync(0, buffer);
                await node.CheckAsync(Qcow2RepairMode.None);
            }
            catch (BlockException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {i} (seed {seed}) failed read-only with {e}");
            }

            try
            {
                // Read-write: writes, zeroes and a repair may fail, but only with a BlockException.
                await using var node = await Qcow2Node.OpenAsync(await NodeOfAsync(image), readOnly: false);
                await node.WriteAsync(random.Next(1 << 19), Qcow2TestImage.Pattern(10_000, i));
                await node.WriteZeroesAsync(random.Next(1 << 19), 20_000);
                await node.DiscardAsync(random.Next(1 << 19), 20_000);
                await node.FlushAsync();
                await node.CheckAsync(Qcow2RepairMode.All);
            }
            catch (BlockException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {i} (seed {seed}) failed with {e}");
            }
        }
    }
}
