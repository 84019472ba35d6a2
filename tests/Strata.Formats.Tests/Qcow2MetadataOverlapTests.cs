using System.Buffers.Binary;
using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Formats.Tests;

/// <summary>
/// Images whose refcounts or mappings are wrong so that a guest write would land on metadata
/// (QEMU's overlap check, block/qcow2-refcount.c qcow2_check_metadata_overlap): the write is refused
/// as corrupt, the image is marked corrupt, its metadata is left as it was and reads go on.
/// </summary>
public sealed class Qcow2MetadataOverlapTests(ITestOutputHelper output)
{
    private const ulong Copied = 1UL << 63;
    private const ulong ZeroFlag = 1;
    private const ulong CompressedFlag = 1UL << 62;

    // A refusal comes at once; a driver that spins is stopped by this bound, so the test fails instead of hanging.
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AZeroedRefcountBlockRefusesTheAllocatingWriteThatWouldLandOnTheHeader()
    {
        var builder = new Qcow2ImageBuilder();
        builder.Patch(builder.RefcountBlockOffset, new byte[builder.ClusterSize]);
        await AssertRefusedAsync(builder.Build(), WriteFreshClusterAsync, "qcow2_header");
    }

    [Theory]
    [InlineData(1, "refcount table")]
    [InlineData(2, "refcount block")]
    [InlineData(3, "active L1 table")]
    [InlineData(4, "active L2 table")]
    public async Task ARefcountOfZeroOnAMetadataClusterNeverHandsItToAGuestWrite(int cluster, string overlap)
    {
        // Clusters 0 .. cluster-1 keep their refcount, so first fit reaches the metadata cluster first.
        var builder = new Qcow2ImageBuilder();
        builder.Patch(builder.RefcountBlockOffset + (2 * cluster), 0, 0);
        await AssertRefusedAsync(builder.Build(), WriteFreshClusterAsync, overlap);
    }

    [Fact]
    public async Task RefcountTableEntryZeroEndsTheFirstAllocatingWriteInAnErrorInsteadOfSpinning()
    {
        // The block for clusters 0.. would be placed at the first cluster it covers: offset 0, the header.
        await AssertRefusedAsync(new Qcow2ImageBuilder { RefcountTableEntry0 = 0 }.Build(), WriteFreshClusterAsync, "qcow2_header");
    }

    [Theory]
    // One 512-byte sector of "compressed data" at host offset 0 (qcow2.txt, "Compressed Clusters
    // Descriptor"): freeing it drops the header's refcount to 0.
    [InlineData(CompressedFlag, "qcow2_header")]
    // A version 3 zero cluster may keep its host cluster (qcow2.txt, "Standard Cluster Descriptor");
    // here that cluster is the L1 table.
    [InlineData((ulong)(3 << 16) | ZeroFlag, "active L1 table")]
    public async Task AnEntryOwningMetadataIsNeverFreedByTheWriteThatReplacesIt(ulong l2Entry, string overlap)
    {
        // Overwriting guest cluster 0 would free what its entry owns; the next allocating write would
        // then land on that metadata.
        var builder = new Qcow2ImageBuilder { L2Entry0 = l2Entry };
        Assert.Equal(3L << 16, builder.L1OffsetDefault);
        await AssertRefusedAsync(builder.Build(), async node =>
        {
            await node.WriteAsync(0, Workload.Pattern(new Random(5), builder.ClusterSize));
            await node.FlushAsync();
            await WriteFreshClusterAsync(node);
        }, overlap);
    }

    [Theory]
    [InlineData("refcount table")]
    [InlineData("refcount block")]
    [InlineData("active L1 table")]
    [InlineData("active L2 table")]
    public async Task AnL2EntryPointingAtMetadataRefusesTheInPlaceWrite(string overlap)
    {
        // A standard entry cannot point at the header: host offset 0 means "unallocated" (the compressed
        // descriptor above covers the header).
        var builder = new Qcow2ImageBuilder();
        long target = overlap switch
        {
            "refcount table" => builder.RefcountTableOffsetDefault,
            "refcount block" => builder.RefcountBlockOffset,
            "active L1 table" => builder.L1OffsetDefault,
            _ => builder.L2Offset,
        };
        builder.L2Entry0 = (ulong)target | Copied;
        await AssertRefusedAsync(builder.Build(), async node =>
        {
            await node.WriteAsync(512, Workload.Pattern(new Random(7), 4096));
            await node.FlushAsync();
        }, overlap, readBack: async (node, before) =>
        {
            // The guest reads the metadata cluster it maps, unchanged.
            var cluster = new byte[builder.ClusterSize];
            await node.ReadAsync(0, cluster);
            Assert.True(cluster.AsSpan().SequenceEqual(before.AsSpan((int)target, builder.ClusterSize)), "guest cluster 0 does not read as the cluster it maps");
        });
    }

    [Fact]
    public async Task AnL2EntryPointingAtAnotherL2TableOfAQemuImageRefusesTheWrite()
    {
        using var dir = new TempFolder("overlap");
        string path = dir.File("qemu.qcow2");
        Processes.Ok("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=65536", path, "2G");
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 64k", "-c", "write -P 0x22 1G 64k", path);
        long l1 = (long)Qcow2HeaderOffsets.ReadUInt64(path, Qcow2HeaderOffsets.L1TableOffset);
        long first = (long)(Qcow2HeaderOffsets.ReadUInt64(path, l1) & 0x00ff_ffff_ffff_fe00UL);
        long second = (long)(Qcow2HeaderOffsets.ReadUInt64(path, l1 + (2 * 8)) & 0x00ff_ffff_ffff_fe00UL);
        Assert.True(first != 0 && second != 0 && first != second, $"qemu-img laid out L2 tables at 0x{first:x} and 0x{second:x}");
        var image = await File.ReadAllBytesAsync(path);
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan((int)first), (ulong)second | Copied);
        await AssertRefusedAsync(image, async node => await node.WriteAsync(0, Workload.Pattern(new Random(8), 4096)), "active L2 table");
    }

    [Fact]
    public async Task AnImageMarkedCorruptByARefusedWriteIsRepairedByCheckAndTakesWritesAgain()
    {
        using var dir = new TempFolder("overlap");
        var builder = new Qcow2ImageBuilder();
        builder.Patch(builder.RefcountBlockOffset, new byte[builder.ClusterSize]);
        string path = builder.WriteTo(dir.File("repair.qcow2"));
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            var refused = await Assert.ThrowsAsync<BlockException>(() => Task.Run(() => WriteFreshClusterAsync(node)).WaitAsync(Bound));
            Assert.Equal(BlockError.Corrupt, refused.Error);
        }

        await Assert.ThrowsAsync<BlockException>(async () => await Qcow2TestImage.OpenAsync(path));
        await using (var repair = await Qcow2Node.OpenForRepairAsync(Raw.RawFileNode.Open(path, readOnly: false)))
        {
            var result = await repair.CheckAsync(Qcow2RepairMode.All);
            output.WriteLine($"repair: {result.CorruptionsFixed} corruptions fixed, {result.Corruptions} left");
            Assert.Equal(0, result.Corruptions);
        }

        QemuImg.AssertClean(path, "after the repair");
        Assert.False(QemuImg.Info(path).GetProperty("format-specific").GetProperty("data").GetProperty("corrupt").GetBoolean(), "the repair left the corrupt bit");
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            await WriteFreshClusterAsync(node);
            var first = new byte[builder.ClusterSize];
            await node.ReadAsync(0, first);
            Assert.True(first.AsSpan().IndexOfAnyExcept(builder.DataPattern) < 0, "guest cluster 0 lost its data");
        }

        QemuImg.AssertClean(path, "after a write on the repaired image");
    }

    private static async Task WriteFreshClusterAsync(IBlockNode node)
    {
        await node.WriteAsync(1 << 20, Workload.Pattern(new Random(3), 65536));
        await node.FlushAsync();
    }

    /// <summary>
    /// Runs <paramref name="attack"/> on the image opened read-write and asserts: it fails within the
    /// bound as corrupt, naming <paramref name="overlap"/>; later writes fail as corrupt; reads go on;
    /// qemu-img sees the corrupt bit; every byte of the original file but the feature bits is unchanged.
    /// </summary>
    private async Task AssertRefusedAsync(byte[] image, Func<IBlockNode, Task> attack, string overlap, Func<IBlockNode, byte[], Task>? readBack = null)
    {
        using var dir = new TempFolder("overlap");
        string path = dir.File("hostile.qcow2");
        await File.WriteAllBytesAsync(path, image);
        var node = await Qcow2TestImage.OpenAsync(path);
        bool spinning = false;
        try
        {
            // On a thread of its own: a driver that spins synchronously must not take the test with it.
            var attempt = Task.Run(() => attack(node));
            Exception? caught;
            try
            {
                await attempt.WaitAsync(Bound);
                caught = null;
            }
            catch (TimeoutException)
            {
                // The node's lock is still held by the spinning write: disposing would hang too.
                spinning = true;
                Assert.Fail($"the write did not end within {Bound.TotalSeconds} s (the driver spins or hangs)");
                return;
            }
            catch (Exception e)
            {
                caught = e;
            }

            Assert.True(caught is not null, "the write that lands on metadata was accepted");
            var refused = Assert.IsType<BlockException>(caught, exactMatch: false);
            output.WriteLine($"refused: {refused.Message}");
            Assert.Equal(BlockError.Corrupt, refused.Error);
            Assert.Contains(overlap, refused.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', refused.Message);

            var again = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(2 << 20, new byte[512]));
            Assert.Equal(BlockError.Corrupt, again.Error);
            Assert.Contains("corrupt", again.Message, StringComparison.Ordinal);

            var unallocated = new byte[4096];
            await node.ReadAsync(3 << 20, unallocated);
            Assert.True(unallocated.AsSpan().IndexOfAnyExcept((byte)0) < 0, "an unallocated cluster does not read as zeroes");
            if (readBack is not null)
            {
                await readBack(node, image);
            }
        }
        finally
        {
            if (!spinning)
            {
                await node.DisposeAsync().AsTask().WaitAsync(Bound);
            }
        }

        var info = QemuImg.Info(path);
        Assert.True(info.GetProperty("format-specific").GetProperty("data").GetProperty("corrupt").GetBoolean(), "qemu-img info does not see the corrupt bit");
        AssertUnchangedButTheCorruptBit(image, await File.ReadAllBytesAsync(path));
    }

    /// <summary>The header, the tables and every other byte of the original file are as they were, but incompatible bit 1.</summary>
    private static void AssertUnchangedButTheCorruptBit(byte[] before, byte[] after)
    {
        long changed = Qcow2CorruptBit.FirstOtherChange(before, after);
        Assert.True(changed < 0, $"byte 0x{changed:x} of the image changed: the header or a table was written");
    }
}
