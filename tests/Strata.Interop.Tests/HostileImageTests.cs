using Strata.Block;
using Strata.Formats;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Interop.Tests;

/// <summary>
/// One crafted image per header field and table (docs/interop/qcow2.txt): each is refused at open or
/// its bad access fails, always with a one-line <see cref="BlockException"/> that names the problem,
/// never another exception type and never a huge allocation.
/// </summary>
[Collection(HostileImageCollection.Name)]
public sealed class HostileImageTests(ITestOutputHelper output)
{
    private const ulong Copied = 1UL << 63;
    private const long AllocationBudget = 64L << 20;

    [Fact]
    public Task WrongMagicIsRefused()
        => AssertRefusedAsync(new Qcow2ImageBuilder { Magic = 0x514649fc }, ["magic", "not a qcow2", "not qcow2"]);

    [Theory]
    [InlineData(1u)]
    [InlineData(4u)]
    [InlineData(0xffffffffu)]
    public Task UnsupportedVersionIsRefused(uint version)
        => AssertRefusedAsync(new Qcow2ImageBuilder { Version = version }, ["version"]);

    [Theory]
    [InlineData(96u)]
    [InlineData(105u)]
    [InlineData(0x20000u)]
    [InlineData(0xfffffff8u)]
    public Task HeaderLengthTooShortUnalignedOrBeyondTheClusterIsRefused(uint headerLength)
        => AssertRefusedAsync(new Qcow2ImageBuilder().PatchUInt32(Qcow2HeaderOffsets.HeaderLength, headerLength), ["header"]);

    [Theory]
    [InlineData(0u)]
    [InlineData(8u)]
    [InlineData(22u)]
    [InlineData(63u)]
    [InlineData(0xffffffffu)]
    public Task ClusterBitsOutsideNineToTwentyOneAreRefused(uint clusterBits)
        => AssertRefusedAsync(new Qcow2ImageBuilder { ClusterBits = clusterBits }, ["cluster"]);

    [Theory]
    [InlineData(1UL << 62)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 50)]
    public Task VirtualSizeBeyondWhatTheL1TableMapsIsRefused(ulong size)
        => AssertRefusedAsync(new Qcow2ImageBuilder { Size = size }, ["size", "L1"]);

    [Theory]
    [InlineData(0x10000000u)]
    [InlineData(0xffffffffu)]
    [InlineData(0x02000000u)]
    public Task HugeL1SizeIsRefusedWithoutAllocatingIt(uint l1Size)
        => AssertRefusedAsync(new Qcow2ImageBuilder { L1Size = l1Size }, ["L1"]);

    [Fact]
    public Task L1SizeSmallerThanTheVirtualSizeNeedsIsRefused()
        => AssertRefusedAsync(new Qcow2ImageBuilder(clusterBits: 9, size: 4 << 20) { L1Size = 1 }, ["L1", "size"]);

    [Fact]
    public Task MisalignedL1TableOffsetIsRefused()
    {
        var b = new Qcow2ImageBuilder();
        b.L1TableOffset = (ulong)b.L1OffsetDefault + 8;
        return AssertRefusedAsync(b, ["L1"]);
    }

    [Theory]
    [InlineData(1UL << 40)]
    [InlineData(1UL << 62)]
    [InlineData(0xffffffffffff0000UL)]
    public Task L1TableOffsetBeyondTheFileOrHugeIsRefused(ulong offset)
        => AssertRefusedAsync(new Qcow2ImageBuilder { L1TableOffset = offset }, ["L1"]);

    [Fact]
    public Task L1TableOverlappingTheHeaderIsRefused()
        => AssertRefusedAsync(new Qcow2ImageBuilder { L1TableOffset = 0 }, ["L1", "overlap", "header"], WriteFirstCluster, readOnly: false);

    [Theory]
    [InlineData(7u)]
    [InlineData(64u)]
    public Task RefcountOrderAboveSixIsRefused(uint order)
        => AssertRefusedAsync(new Qcow2ImageBuilder { RefcountOrder = order }, ["refcount"]);

    [Fact]
    public Task MisalignedRefcountTableOffsetIsRefused()
    {
        var b = new Qcow2ImageBuilder();
        b.RefcountTableOffset = (ulong)b.RefcountTableOffsetDefault + 8;
        return AssertRefusedAsync(b, ["refcount"], WriteFreshCluster, readOnly: false);
    }

    [Theory]
    [InlineData(1UL << 40)]
    [InlineData(0xffffffffffff0000UL)]
    public Task RefcountTableOffsetBeyondTheFileIsRefused(ulong offset)
        => AssertRefusedAsync(new Qcow2ImageBuilder { RefcountTableOffset = offset }, ["refcount"], WriteFreshCluster, readOnly: false);

    [Theory]
    [InlineData(0u)]
    [InlineData(0x01000000u)]
    [InlineData(0xffffffffu)]
    public Task RefcountTableClustersZeroOrHugeIsRefused(uint clusters)
        => AssertRefusedAsync(new Qcow2ImageBuilder { RefcountTableClusters = clusters }, ["refcount"], WriteFreshCluster, readOnly: false);

    [Fact]
    public Task BackingFileNameOutsideTheHeaderClusterIsRefused()
    {
        var b = new Qcow2ImageBuilder { BackingFile = "base.raw" };
        b.BackingFileOffset = (ulong)b.ClusterSize + 16;
        return AssertRefusedAsync(b, ["backing"]);
    }

    [Fact]
    public Task BackingFileNameBeyondTheEndOfTheFileIsRefused()
        => AssertRefusedAsync(new Qcow2ImageBuilder { BackingFile = "base.raw", BackingFileOffset = 1UL << 40 }, ["backing"]);

    [Theory]
    [InlineData(1024u)]
    [InlineData(0xffffffffu)]
    public Task BackingFileNameTooLongIsRefused(uint length)
        => AssertRefusedAsync(new Qcow2ImageBuilder { BackingFile = "base.raw", BackingFileSize = length }, ["backing"]);

    [Fact]
    public Task TooManySnapshotsAreRefused()
        => AssertRefusedAsync(new Qcow2ImageBuilder { NbSnapshots = 0x7fffffff, SnapshotsOffset = 0x10000 }, ["snapshot"]);

    [Theory]
    [InlineData(1UL << 40)]
    [InlineData(0x10008UL)]
    [InlineData(0xffffffffffff0000UL)]
    public Task SnapshotTableMisalignedOrBeyondTheFileIsRefused(ulong offset)
        => AssertRefusedAsync(new Qcow2ImageBuilder { NbSnapshots = 1, SnapshotsOffset = offset }, ["snapshot"]);

    [Theory]
    [InlineData(1UL << 5)]
    [InlineData(1UL << 40)]
    [InlineData(1UL << 63)]
    public Task UnknownIncompatibleFeatureIsRefused(ulong bit)
        => AssertRefusedAsync(new Qcow2ImageBuilder { IncompatibleFeatures = bit }, ["feature", "incompatible"]);

    [Fact]
    public Task ExternalDataFileFeatureIsRefused()
        => AssertRefusedAsync(new Qcow2ImageBuilder { IncompatibleFeatures = 1UL << 2 }, ["feature", "data file", "external"]);

    [Fact]
    public Task EncryptedImageIsRefused()
        => AssertRefusedAsync(new Qcow2ImageBuilder { CryptMethod = 1 }, ["encrypt", "crypt"]);

    [Fact]
    public async Task CorruptBitOpensReadOnlyOnly()
    {
        var builder = new Qcow2ImageBuilder { IncompatibleFeatures = 1UL << 1, DataPattern = 0x3c };
        await AssertRefusedAsync(builder, ["corrupt"], WriteFirstCluster, readOnly: false);
        using var dir = new TempFolder();
        string path = builder.WriteTo(dir.File("corrupt.qcow2"));
        await using var node = await ImageOpener.OpenAsync(path, new ImageOpenOptions { ReadOnly = true, Format = "qcow2" });
        var first = new byte[512];
        await node.ReadAsync(0, first);
        Assert.All(first, b => Assert.Equal(0x3c, b));
    }

    [Theory]
    [InlineData(0x7ffffff0u)]
    [InlineData(0xfff0u)]
    [InlineData(0xffffffffu)]
    public Task ExtensionLengthOverflowingTheHeaderClusterIsRefused(uint length)
    {
        var b = new Qcow2ImageBuilder();
        b.Extensions.Add(new Qcow2Extension(0x1234abcd, new byte[16], length));
        return AssertRefusedAsync(b, ["extension", "header"]);
    }

    [Fact]
    public Task BackingFormatExtensionLongerThanItsClusterIsRefused()
    {
        var b = new Qcow2ImageBuilder { BackingFile = "base.raw" };
        b.Extensions.Add(new Qcow2Extension(Qcow2HeaderOffsets.ExtensionBackingFormat, "raw"u8.ToArray(), 0x100000));
        return AssertRefusedAsync(b, ["extension", "header", "backing"]);
    }

    [Theory]
    [InlineData(1UL << 40)]
    [InlineData((1UL << 56) - 65536)]
    public Task L2EntryPointingBeyondTheFileFailsTheRead(ulong hostOffset)
        => AssertRefusedAsync(new Qcow2ImageBuilder { L2Entry0 = hostOffset | Copied }, ClusterWords, ReadFirstCluster);

    [Fact]
    public Task MisalignedL2EntryFailsTheRead()
    {
        var b = new Qcow2ImageBuilder();
        b.L2Entry0 = ((ulong)b.DataOffset + 512) | Copied;
        return AssertRefusedAsync(b, ClusterWords.Append("align").ToArray(), ReadFirstCluster);
    }

    [Fact]
    public Task L1EntryPointingBeyondTheFileFailsTheRead()
        => AssertRefusedAsync(new Qcow2ImageBuilder { L1Entry0 = (1UL << 40) | Copied }, ["L1", "L2", "table", "offset", "beyond", "end of", "EOF"], ReadFirstCluster);

    [Fact]
    public Task MisalignedL1EntryFailsTheRead()
    {
        var b = new Qcow2ImageBuilder();
        // Bits 0-8 of an L1 entry are reserved (qcow2.txt, "L1 table entry"): misalign in bit 9 and up.
        b.L1Entry0 = ((ulong)b.L2Offset + 512) | Copied;
        return AssertRefusedAsync(b, ["L1", "L2", "align"], ReadFirstCluster);
    }

    [Fact]
    public Task MisalignedRefcountTableEntryFailsTheAllocatingWrite()
    {
        var b = new Qcow2ImageBuilder();
        // Bits 0-8 of a refcount table entry are reserved (qcow2.txt, "Refcount table entry"): misalign above them.
        b.RefcountTableEntry0 = (ulong)b.RefcountBlockOffset + 512;
        return AssertRefusedAsync(b, ["refcount"], WriteFreshCluster, readOnly: false);
    }

    [Fact]
    public Task RefcountTableEntryBeyondTheFileFailsTheAllocatingWrite()
        => AssertRefusedAsync(new Qcow2ImageBuilder { RefcountTableEntry0 = 1UL << 40 }, ["refcount"], WriteFreshCluster, readOnly: false);

    [Fact]
    public Task FileTruncatedInsideTheHeaderIsRefused()
        => AssertRefusedAsync(new Qcow2ImageBuilder { TruncateTo = 50 }, ["header", "truncated", "short", "end of file", "too small"]);

    [Fact]
    public Task FileTruncatedBeforeTheL1TableIsRefused()
    {
        var b = new Qcow2ImageBuilder();
        b.TruncateTo = b.L1OffsetDefault;
        return AssertRefusedAsync(b, ["L1", "end of file", "truncated", "beyond"], ReadFirstCluster);
    }

    [Fact]
    public Task FileTruncatedBeforeTheDataClusterFailsTheRead()
    {
        var b = new Qcow2ImageBuilder();
        b.TruncateTo = b.DataOffset;
        return AssertRefusedAsync(b, ClusterWords.Append("truncated").ToArray(), ReadFirstCluster);
    }

    [Fact]
    public Task L1TableOverlappingTheRefcountTableIsRefused()
    {
        var b = new Qcow2ImageBuilder();
        b.L1TableOffset = (ulong)b.RefcountTableOffsetDefault;
        return AssertRefusedAsync(b, ["overlap", "L1", "refcount"], WriteFirstCluster, readOnly: false);
    }

    [Fact]
    public Task RefcountTableOverlappingTheL1TableIsRefused()
    {
        var b = new Qcow2ImageBuilder();
        b.RefcountTableOffset = (ulong)b.L1OffsetDefault;
        return AssertRefusedAsync(b, ["overlap", "L1", "refcount"], WriteFreshCluster, readOnly: false);
    }

    private static readonly string[] ClusterWords = ["cluster", "L2", "offset", "beyond", "end of file", "EOF", "data"];

    private static async Task ReadFirstCluster(IBlockNode node)
    {
        var buffer = new byte[512];
        await node.ReadAsync(0, buffer);
    }

    private static async Task WriteFirstCluster(IBlockNode node)
    {
        await node.WriteAsync(0, new byte[512]);
        await node.FlushAsync();
    }

    /// <summary>Writes where nothing is allocated yet, so the driver must allocate (and touch refcounts).</summary>
    private static async Task WriteFreshCluster(IBlockNode node)
    {
        await node.WriteAsync(node.Size / 2, Workload.Pattern(new Random(3), 4096));
        await node.FlushAsync();
    }

    /// <summary>
    /// Opens the crafted image as qcow2 and runs <paramref name="access"/> (a read of guest cluster 0 by
    /// default). Something must fail with a <see cref="BlockException"/> whose single-line message
    /// contains one of <paramref name="keywords"/>, and the attempt must not allocate more than the budget.
    /// </summary>
    private async Task AssertRefusedAsync(Qcow2ImageBuilder builder, string[] keywords, Func<IBlockNode, Task>? access = null, bool readOnly = true)
    {
        using var dir = new TempFolder("hostile");
        string path = builder.WriteTo(dir.File("bad.qcow2"));
        access ??= ReadFirstCluster;
        Exception? caught = null;
        long before = GC.GetTotalAllocatedBytes(precise: true);
        IBlockNode? node = null;
        try
        {
            node = await ImageOpener.OpenAsync(path, new ImageOpenOptions { ReadOnly = readOnly, Format = "qcow2" });
            await access(node);
        }
        catch (Exception e)
        {
            caught = e;
        }
        finally
        {
            if (node is not null)
            {
                try
                {
                    await node.DisposeAsync();
                }
                catch (Exception e)
                {
                    caught ??= e;
                }
            }
        }

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(caught is not null, $"the hostile image was accepted and {(readOnly ? "read" : "written")} without error");
        Assert.True(caught is BlockException, $"expected a BlockException, got {caught}");
        string message = caught.Message;
        output.WriteLine($"refused: {message}");
        Assert.True(keywords.Any(k => message.Contains(k, StringComparison.OrdinalIgnoreCase)),
            $"the message does not name the problem (expected one of: {string.Join(", ", keywords)}): \"{message}\"");
        Assert.DoesNotContain('\n', message);
        Assert.True(allocated < AllocationBudget, $"refusing the image allocated {allocated >> 20} MiB: \"{message}\"");
    }
}
