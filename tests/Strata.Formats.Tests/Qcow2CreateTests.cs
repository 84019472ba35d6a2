using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Formats.Tests;

public sealed class Qcow2CreateTests
{
    [Theory]
    [InlineData(65536, "1.1", 16, 1L << 30)]
    [InlineData(512, "1.1", 1, 64L << 20)]
    [InlineData(4096, "1.1", 64, 1L << 30)]
    [InlineData(2 * 1024 * 1024, "1.1", 8, 10L << 30)]
    [InlineData(65536, "0.10", 16, 1L << 30)]
    [InlineData(65536, "1.1", 2, 0)]
    public async Task CreatedImageIsByteIdenticalToQemuImgCreate(int clusterSize, string compat, int refcountBits, long size)
    {
        using var dir = new TempFolder();
        string ours = dir.File("ours.qcow2");
        string theirs = dir.File("theirs.qcow2");
        await Qcow2TestImage.CreateAsync(ours, new Qcow2CreateOptions { Size = size, ClusterSize = clusterSize, Compat = compat, RefcountBits = refcountBits });
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize},compat={compat},refcount_bits={refcountBits}", theirs, size.ToString());
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        QemuImg.AssertClean(ours);
    }

    [Fact]
    public async Task CreatedImageWithBackingAndOptionsMatchesQemuImgCreate()
    {
        using var dir = new TempFolder();
        string ours = dir.File("ours.qcow2");
        string theirs = dir.File("theirs.qcow2");
        string baseImage = dir.File("base.raw");
        File.WriteAllBytes(baseImage, new byte[1 << 20]);
        await Qcow2TestImage.CreateAsync(ours, new Qcow2CreateOptions
        {
            Size = 1 << 30, BackingFile = "base.raw", BackingFormat = "raw", LazyRefcounts = true, CompressionType = "zstd",
        });
        Processes.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "-o", "lazy_refcounts=on,compression_type=zstd", theirs, "1G");
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        var info = QemuImg.Info(ours);
        Assert.Equal("base.raw", info.GetProperty("backing-filename").GetString());
        Assert.Equal("zstd", info.GetProperty("format-specific").GetProperty("data").GetProperty("compression-type").GetString());
    }

    [Fact]
    public async Task OpenedImageReportsTheCreatedOptions()
    {
        using var dir = new TempFolder();
        string path = dir.File("a.qcow2");
        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions { Size = 5 << 20, ClusterSize = 4096, RefcountBits = 4, BackingFile = "x.img", BackingFormat = "qcow2" });
        await using var node = await Qcow2TestImage.OpenAsync(path, readOnly: true);
        Assert.Equal(5 << 20, node.Size);
        Assert.Equal(3, node.Info.Version);
        Assert.Equal(4096, node.Info.ClusterSize);
        Assert.Equal(4, node.Info.RefcountBits);
        Assert.Equal("x.img", node.Info.BackingFile);
        Assert.Equal("qcow2", node.Info.BackingFormat);
        Assert.Equal("zlib", node.Info.CompressionType);
    }
}
