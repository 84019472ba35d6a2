using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Formats.Tests;

public sealed class Qcow2InteropTests
{
    [Theory]
    [InlineData("compat=0.10")]
    [InlineData("refcount_bits=1")]
    [InlineData("refcount_bits=2")]
    [InlineData("refcount_bits=4")]
    [InlineData("refcount_bits=8")]
    [InlineData("refcount_bits=32")]
    [InlineData("refcount_bits=64")]
    [InlineData("cluster_size=512")]
    [InlineData("cluster_size=2M")]
    public async Task ImageWrittenByQemuReadsIdenticallyAndAcceptsOurWrites(string options)
    {
        using var dir = new TempFolder();
        string path = dir.File("q.qcow2");
        string raw = dir.File("q.raw");
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", options, path, "3M");
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 100k", "-c", "write -P 0x22 1M 5k", "-c", "write -z 2M 64k", path);
        Processes.Ok("qemu-img", "convert", "-f", "qcow2", "-O", "raw", path, raw);
        var expected = File.ReadAllBytes(raw);
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            var back = new byte[node.Size];
            await node.ReadAsync(0, back);
            Assert.Equal(expected, back);
            var data = Qcow2TestImage.Pattern(300_000, 9);
            await node.WriteAsync(50_000, data);
            data.CopyTo(expected, 50_000);
            await node.WriteZeroesAsync(1 << 20, 4096);
            Array.Clear(expected, 1 << 20, 4096);
        }

        File.WriteAllBytes(raw, expected);
        QemuImg.AssertClean(path, options);
        Processes.Ok("qemu-img", "compare", "-F", "raw", path, raw);
    }

    [Fact]
    public async Task ImageWithInternalSnapshotReadsButRefusesReadWrite()
    {
        using var dir = new TempFolder();
        string path = dir.File("s.qcow2");
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", path, "1M");
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 0 64k", path);
        Processes.Ok("qemu-img", "snapshot", "-c", "snap1", path);
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 0x44 0 4k", path);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await Qcow2TestImage.OpenAsync(path));
        Assert.Contains("internal snapshot", e.Message, StringComparison.Ordinal);
        await using var node = await Qcow2TestImage.OpenAsync(path, readOnly: true);
        var back = new byte[8192];
        await node.ReadAsync(0, back);
        Assert.All(back[..4096], b => Assert.Equal(0x44, b));
        Assert.All(back[4096..], b => Assert.Equal(0x33, b));
        var check = await node.CheckAsync(Qcow2RepairMode.None);
        Assert.Equal(0, check.Corruptions);
        Assert.Equal(0, check.Leaks);
    }

    [Fact]
    public async Task ResizeGrowsTheL1TableAndQemuSeesTheNewSize()
    {
        using var dir = new TempFolder();
        string path = dir.File("r.qcow2");
        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 512 });
        var data = Qcow2TestImage.Pattern(5000, 1);
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            await node.WriteAsync(1000, data);
            await node.ResizeAsync(64L << 20);
            await node.WriteAsync((64L << 20) - 5000, data);
            var e = await Assert.ThrowsAsync<BlockException>(async () => await node.ResizeAsync(1 << 20));
            Assert.Equal(BlockError.NotSupported, e.Error);
            Assert.Equal("qcow2 images cannot shrink", e.Message);
        }

        QemuImg.AssertClean(path);
        Assert.Equal(64L << 20, QemuImg.Info(path).GetProperty("virtual-size").GetInt64());
        string raw = dir.File("r.raw");
        var expected = new byte[64 << 20];
        data.CopyTo(expected, 1000);
        data.CopyTo(expected, (64 << 20) - 5000);
        File.WriteAllBytes(raw, expected);
        Processes.Ok("qemu-img", "compare", "-F", "raw", path, raw);
    }

    [Fact]
    public async Task ManyAllocationsGrowTheRefcountTable()
    {
        using var dir = new TempFolder();
        string path = dir.File("g.qcow2");

        // 512-byte clusters with 64-bit refcounts: a refcount block covers 64 clusters (32 KiB) and
        // one table cluster 64 blocks (2 MiB); writing 6 MiB grows the table several times.
        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions { Size = 8 << 20, ClusterSize = 512, RefcountBits = 64 });
        var data = Qcow2TestImage.Pattern(6 << 20, 5);
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            for (int i = 0; i < data.Length; i += 256 * 1024)
            {
                await node.WriteAsync(i, data.AsMemory(i, 256 * 1024));
            }
        }

        QemuImg.AssertClean(path);
        var header = new byte[64];
        using (var stream = File.OpenRead(path))
        {
            stream.ReadExactly(header);
        }

        Assert.True(System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(56)) > 1, "the refcount table did not grow");
        string raw = dir.File("g.raw");
        var expected = new byte[8 << 20];
        data.CopyTo(expected, 0);
        File.WriteAllBytes(raw, expected);
        Processes.Ok("qemu-img", "compare", "-F", "raw", path, raw);
    }

    [Fact]
    public async Task BackingChainOfDepthThreeReadsThrough()
    {
        using var dir = new TempFolder();
        string a = dir.File("a.qcow2");
        string b = dir.File("b.qcow2");
        string c = dir.File("c.qcow2");
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", a, "1M");
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 300k", a);
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b, "2M");
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 2 100k 100k", b);
        await Qcow2TestImage.CreateAsync(c, new Qcow2CreateOptions { Size = 3 << 20, BackingFile = "b.qcow2", BackingFormat = "qcow2" });
        await using (var top = await ImageOpener.OpenAsync(c, new ImageOpenOptions()))
        {
            await top.WriteAsync(150 * 1024, new byte[] { 3, 3, 3 });
            var back = new byte[3 << 20];
            await top.ReadAsync(0, back);
            Assert.Equal(1, back[0]);
            Assert.Equal(2, back[100 * 1024]);
            Assert.Equal(3, back[150 * 1024]);
            Assert.Equal(2, back[(150 * 1024) + 3]);
            Assert.Equal(1, back[250 * 1024]);
            Assert.Equal(0, back[400 * 1024]);
        }

        QemuImg.AssertClean(c);
    }

    [Fact]
    public async Task MakeEmptyLeavesEverythingToTheBackingAndChangeBackingFileRewritesTheName()
    {
        using var dir = new TempFolder();
        string basePath = dir.File("base.raw");
        string other = dir.File("other.raw");
        string top = dir.File("top.qcow2");
        File.WriteAllBytes(basePath, Qcow2TestImage.Pattern(1 << 20, 1));
        File.Copy(basePath, other);
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", top, "1M");
        await using (var node = await ImageOpener.OpenAsync(top, new ImageOpenOptions()) as Qcow2Node)
        {
            Assert.NotNull(node);
            await node.WriteAsync(0, Qcow2TestImage.Pattern(200_000, 2));
            await node.WriteZeroesAsync(300_000, 100_000);
            await node.MakeEmptyAsync();
            Assert.Equal(BlockState.Unallocated, (await node.GetBlockStatusAsync(0, 1 << 20)).State);
            await node.ChangeBackingFileAsync("other.raw", "raw");
        }

        QemuImg.AssertClean(top);
        var info = QemuImg.Info(top);
        Assert.Equal("other.raw", info.GetProperty("backing-filename").GetString());
        Assert.Equal("raw", info.GetProperty("backing-filename-format").GetString());
        Processes.Ok("qemu-img", "compare", "-F", "raw", top, other);
        var map = Processes.Ok("qemu-img", "map", "--output=json", top);
        Assert.DoesNotContain("\"depth\": 0", map, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WriteIntoAZeroClusterThatKeepsItsAllocationReplacesIt()
    {
        using var dir = new TempFolder();
        string path = dir.File("z.qcow2");
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", path, "1M");
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 7 0 128k", "-c", "write -z 0 128k", path);
        var map = Processes.Ok("qemu-img", "map", "--output=json", path);
        Assert.Contains("\"zero\": true", map, StringComparison.Ordinal);
        var expected = new byte[1 << 20];
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            Assert.Equal(BlockState.Allocated | BlockState.Zero, (await node.GetBlockStatusAsync(0, 1 << 20)).State);
            var data = Qcow2TestImage.Pattern(1000, 8);
            await node.WriteAsync(70_000, data);
            data.CopyTo(expected, 70_000);
            var back = new byte[1 << 20];
            await node.ReadAsync(0, back);
            Assert.Equal(expected, back);
        }

        QemuImg.AssertClean(path);
        string raw = dir.File("z.raw");
        File.WriteAllBytes(raw, expected);
        Processes.Ok("qemu-img", "compare", "-F", "raw", path, raw);
    }

    [Fact]
    public async Task OpeningWithCacheNoneStillReadsQcow2ThroughThePageCache()
    {
        using var dir = new TempFolder();
        string path = dir.File("d.qcow2");
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", path, "1M");
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 5 0 3", path);
        await using var node = await ImageOpener.OpenAsync(path, new ImageOpenOptions { Direct = true });
        var back = new byte[4];
        await node.ReadAsync(0, back);
        Assert.Equal(new byte[] { 5, 5, 5, 0 }, back);
    }
}
