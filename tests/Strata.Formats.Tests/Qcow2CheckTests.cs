using System.Buffers.Binary;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Formats.Tests;

public sealed class Qcow2CheckTests
{
    /// <summary>Sets the 16-bit refcount of a host cluster directly in the file (first refcount block).</summary>
    private static void PokeRefcount(string path, long cluster, ushort value)
    {
        using var stream = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        var header = new byte[64];
        stream.ReadExactly(header);
        long table = BinaryPrimitives.ReadInt64BigEndian(header.AsSpan(48));
        stream.Position = table;
        var entry = new byte[8];
        stream.ReadExactly(entry);
        long block = BinaryPrimitives.ReadInt64BigEndian(entry);
        stream.Position = block + (cluster * 2);
        var bytes = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        stream.Write(bytes);
    }

    /// <summary>qemu-img leaves counts that are zero out of its JSON.</summary>
    private static long Field(System.Text.Json.JsonElement json, string name)
        => json.TryGetProperty(name, out var value) ? value.GetInt64() : 0;

    private static async Task<string> ImageWithDataAsync(TempFolder dir)
    {
        string path = dir.File("a.qcow2");
        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 65536 });
        await using var node = await Qcow2TestImage.OpenAsync(path);
        await node.WriteAsync(0, Qcow2TestImage.Pattern(200_000, 1));
        return path;
    }

    [Fact]
    public async Task CleanImageChecksCleanWithTheSameCountsAsQemu()
    {
        using var dir = new TempFolder();
        string path = await ImageWithDataAsync(dir);
        var qemu = QemuImg.Check(path);
        await using var node = await Qcow2TestImage.OpenAsync(path, readOnly: true);
        var ours = await node.CheckAsync(Qcow2RepairMode.None);
        Assert.Equal(0, ours.Corruptions);
        Assert.Equal(0, ours.Leaks);
        Assert.Equal(Field(qemu, "image-end-offset"), ours.ImageEndOffset);
        Assert.Equal(Field(qemu, "total-clusters"), ours.TotalClusters);
        Assert.Equal(Field(qemu, "allocated-clusters"), ours.AllocatedClusters);
        Assert.Equal(Field(qemu, "fragmented-clusters"), ours.FragmentedClusters);
    }

    [Fact]
    public async Task LeakedClusterIsReportedLikeQemuAndRepaired()
    {
        using var dir = new TempFolder();
        string path = await ImageWithDataAsync(dir);
        long fileClusters = new FileInfo(path).Length / 65536;
        PokeRefcount(path, fileClusters, 1);
        using (var stream = File.Open(path, FileMode.Open))
        {
            stream.SetLength((fileClusters + 1) * 65536);
        }

        var qemu = QemuImg.Check(path);
        Assert.Equal(1, Field(qemu, "leaks"));
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            var ours = await node.CheckAsync(Qcow2RepairMode.None);
            Assert.Equal(1, ours.Leaks);
            Assert.Contains($"Leaked cluster {fileClusters} refcount=1 reference=0", ours.Messages);
            var repaired = await node.CheckAsync(Qcow2RepairMode.Leaks);
            Assert.Equal(1, repaired.LeaksFixed);
            Assert.Equal(0, repaired.Leaks);
        }

        QemuImg.AssertClean(path);
    }

    [Fact]
    public async Task TooLowRefcountIsACorruptionThatRepairAllFixes()
    {
        using var dir = new TempFolder();
        string path = await ImageWithDataAsync(dir);

        // Cluster 4 is the first data cluster (header, refcount table, refcount block, L1, then data/L2).
        PokeRefcount(path, 5, 0);
        var qemu = QemuImg.Check(path);
        Assert.Equal(2, Field(qemu, "corruptions"));
        await using (var node = await Qcow2TestImage.OpenAsync(path, readOnly: true))
        {
            var ours = await node.CheckAsync(Qcow2RepairMode.None);
            Assert.Equal(2, ours.Corruptions);
            Assert.Equal(["ERROR cluster 5 refcount=0 reference=1", "ERROR OFLAG_COPIED data cluster: l2_entry=8000000000050000 refcount=0"], ours.Messages);
        }

        // Opening read-write works (refcounts are not validated at open); repair fixes it.
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            var repaired = await node.CheckAsync(Qcow2RepairMode.All);
            Assert.Equal(1, repaired.CorruptionsFixed);
            Assert.Equal(0, repaired.Corruptions);
        }

        QemuImg.AssertClean(path);
    }

    [Fact]
    public async Task DirtyImageWithLazyRefcountsIsRepairedOnReadWriteOpen()
    {
        using var dir = new TempFolder();
        string path = await ImageWithDataAsync(dir);
        PokeRefcount(path, 5, 0);
        using (var stream = File.Open(path, FileMode.Open))
        {
            var bytes = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(bytes, 1);
            stream.Position = 72;
            stream.Write(bytes);
            BinaryPrimitives.WriteUInt64BigEndian(bytes, 1);
            stream.Position = 80;
            stream.Write(bytes);
        }

        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            Assert.True(node.Info.LazyRefcounts);
            Assert.False(node.Info.Dirty);
            await node.WriteAsync(500_000, Qcow2TestImage.Pattern(1000, 3));
        }

        QemuImg.AssertClean(path);
        var info = QemuImg.Info(path);
        Assert.False(info.GetProperty("dirty-flag").GetBoolean());
    }
}
