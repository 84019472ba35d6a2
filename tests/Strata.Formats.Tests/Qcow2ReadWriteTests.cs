using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Formats.Tests;

public sealed class Qcow2ReadWriteTests
{
    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(2 * 1024 * 1024)]
    public async Task WrittenDataReadsBackAndQemuAgrees(int clusterSize)
    {
        using var dir = new TempFolder();
        string path = dir.File("a.qcow2");
        string raw = dir.File("a.raw");
        long size = 8L << 20;
        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions { Size = size, ClusterSize = clusterSize });
        var model = new byte[size];
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            foreach (var (offset, length, seed) in new[] { (0L, 4096, 1), (12345L, 70000, 2), (size - 3000, 3000, 3), (3L << 20, 1 << 20, 4), (100L, 10, 5) })
            {
                var data = Qcow2TestImage.Pattern(length, seed);
                await node.WriteAsync(offset, data);
                data.CopyTo(model, offset);
            }

            var back = new byte[size];
            await node.ReadAsync(0, back);
            Assert.Equal(model, back);
        }

        File.WriteAllBytes(raw, model);
        QemuImg.AssertClean(path);
        Processes.Ok("qemu-img", "compare", "-f", "qcow2", "-F", "raw", path, raw);
    }

    [Fact]
    public async Task DataWrittenByQemuIoReadsBack()
    {
        using var dir = new TempFolder();
        string path = dir.File("a.qcow2");
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", path, "4M");
        Processes.Ok("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 64k", "-c", "write -P 0xcd 100k 5k", "-c", "write -z 1M 128k", path);
        await using var node = await Qcow2TestImage.OpenAsync(path, readOnly: true);
        var buffer = new byte[4 << 20];
        await node.ReadAsync(0, buffer);
        var expected = new byte[4 << 20];
        expected.AsSpan(0, 65536).Fill(0xab);
        expected.AsSpan(100 * 1024, 5 * 1024).Fill(0xcd);
        Assert.Equal(expected, buffer);
        var status = await node.GetBlockStatusAsync(0, 4 << 20);
        Assert.Equal(BlockState.Allocated | BlockState.Data, status.State);
        Assert.Equal(128 * 1024, status.Length); // both clusters sit at contiguous host offsets
        var zero = await node.GetBlockStatusAsync(1 << 20, 1 << 20);
        Assert.Equal(BlockState.Allocated | BlockState.Zero, zero.State);
        Assert.Equal(128 * 1024, zero.Length);
    }

    [Theory]
    [InlineData("zlib")]
    [InlineData("zstd")]
    public async Task CompressedClustersWrittenByQemuReadBackAndCopyOutOnWrite(string compression)
    {
        using var dir = new TempFolder();
        string raw = dir.File("src.raw");
        string path = dir.File("c.qcow2");
        var content = new byte[2 << 20];
        for (int i = 0; i < content.Length; i++)
        {
            content[i] = (byte)((i / 1000) ^ (i % 7));
        }

        File.WriteAllBytes(raw, content);
        Processes.Ok("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", $"compression_type={compression}", raw, path);
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            var back = new byte[content.Length];
            await node.ReadAsync(0, back);
            Assert.Equal(content, back);
            var status = await node.GetBlockStatusAsync(0, content.Length);
            Assert.True(status.State.HasFlag(BlockState.Compressed));

            var patch = Qcow2TestImage.Pattern(1000, 7);
            await node.WriteAsync(70000, patch);
            patch.CopyTo(content, 70000);
            await node.ReadAsync(0, back);
            Assert.Equal(content, back);
        }

        File.WriteAllBytes(raw, content);
        QemuImg.AssertClean(path);
        Processes.Ok("qemu-img", "compare", "-f", "qcow2", "-F", "raw", path, raw);
    }

    [Fact]
    public async Task PartialWriteToUnallocatedClusterCopiesTheRestFromBacking()
    {
        using var dir = new TempFolder();
        string basePath = dir.File("base.qcow2");
        string top = dir.File("top.qcow2");
        var baseData = Qcow2TestImage.Pattern(1 << 20, 11);
        await Qcow2TestImage.CreateAsync(basePath, new Qcow2CreateOptions { Size = 1 << 20 });
        await using (var b = await Qcow2TestImage.OpenAsync(basePath))
        {
            await b.WriteAsync(0, baseData);
        }

        await Qcow2TestImage.CreateAsync(top, new Qcow2CreateOptions { Size = 2 << 20, BackingFile = "base.qcow2", BackingFormat = "qcow2" });
        var expected = new byte[2 << 20];
        baseData.CopyTo(expected, 0);
        await using (var node = await Qcow2TestImage.OpenAsync(top, backing: await Qcow2TestImage.OpenAsync(basePath, readOnly: true)))
        {
            var patch = Qcow2TestImage.Pattern(100, 12);
            await node.WriteAsync(70000, patch);
            patch.CopyTo(expected, 70000);
            await node.WriteAsync((1 << 20) - 50, patch);
            patch.CopyTo(expected, (1 << 20) - 50);
            var back = new byte[expected.Length];
            await node.ReadAsync(0, back);
            Assert.Equal(expected, back);
            Assert.Equal(BlockState.Unallocated, (await node.GetBlockStatusAsync(0, 65536)).State);
        }

        QemuImg.AssertClean(top);
        string raw = dir.File("expected.raw");
        File.WriteAllBytes(raw, expected);
        Processes.Ok("qemu-img", "compare", "-F", "raw", top, raw);
    }
}
