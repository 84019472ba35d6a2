using System.Text.Json;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary><c>qemu-img info --output=json</c> reads back every header fact Strata writes.</summary>
public sealed class QemuImgInfoTests
{
    [Theory]
    [InlineData(512, "1.1", 16)]
    [InlineData(65536, "1.1", 16)]
    [InlineData(2 * 1024 * 1024, "1.1", 16)]
    [InlineData(65536, "0.10", 16)]
    [InlineData(4096, "1.1", 64)]
    public async Task QemuImgInfoShowsFormatSizeClusterSizeAndCompat(int clusterSize, string compat, int refcountBits)
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.qcow2");
        const long Size = (5 * Images.MiB) + 512;
        await Images.CreateQcow2Async(path, new Qcow2CreateOptions { Size = Size, ClusterSize = clusterSize, Compat = compat, RefcountBits = refcountBits });
        var info = Info(path);
        Assert.Equal("qcow2", info.GetProperty("format").GetString());
        Assert.Equal(Size, info.GetProperty("virtual-size").GetInt64());
        Assert.Equal(clusterSize, info.GetProperty("cluster-size").GetInt32());
        var specific = info.GetProperty("format-specific").GetProperty("data");
        Assert.Equal(compat, specific.GetProperty("compat").GetString());
        if (compat == "1.1")
        {
            Assert.Equal(refcountBits, specific.GetProperty("refcount-bits").GetInt32());
        }

        Assert.False(info.TryGetProperty("backing-filename", out _), info.ToString());
        Images.AssertQemuCheckClean(path, $"cluster {clusterSize} compat {compat}");
    }

    [Theory]
    [InlineData("raw")]
    [InlineData("qcow2")]
    public async Task QemuImgInfoShowsTheRecordedBackingFileAndFormat(string backingFormat)
    {
        using var dir = new TempFolder();
        string backing = dir.File($"base.{backingFormat}");
        Images.QemuImg("create", "-f", backingFormat, backing, "3M").AssertSuccess();
        string path = dir.File("over.qcow2");
        await Images.CreateQcow2Async(path, new Qcow2CreateOptions { Size = 3 * Images.MiB, BackingFile = $"base.{backingFormat}", BackingFormat = backingFormat });
        var info = Info(path);
        Assert.Equal($"base.{backingFormat}", info.GetProperty("backing-filename").GetString());
        Assert.Equal(backingFormat, info.GetProperty("backing-filename-format").GetString());
        Assert.Equal(backing, info.GetProperty("full-backing-filename").GetString());
        Images.AssertQemuCheckClean(path, $"overlay on {backingFormat}");

        // And Strata's own view agrees with QEMU's.
        await using var node = (Qcow2Node)await Images.OpenAsync(path, readOnly: true);
        Assert.Equal($"base.{backingFormat}", node.Info.BackingFile);
        Assert.Equal(backingFormat, node.Info.BackingFormat);
        Assert.Equal(backingFormat, node.Backing?.DriverName);
    }

    [Fact]
    public async Task QemuImgInfoShowsAnAbsoluteBackingNameAsRecorded()
    {
        using var dir = new TempFolder();
        string backing = dir.File("base.qcow2");
        await Images.CreateQcow2Async(backing, new Qcow2CreateOptions { Size = 2 * Images.MiB });
        string path = dir.File("over.qcow2");
        await Images.CreateQcow2Async(path, new Qcow2CreateOptions { Size = 2 * Images.MiB, BackingFile = backing, BackingFormat = "qcow2" });
        var info = Info(path);
        Assert.Equal(backing, info.GetProperty("backing-filename").GetString());
        Assert.Equal("qcow2", info.GetProperty("backing-filename-format").GetString());
    }

    [Fact]
    public async Task StrataReadsTheFactsQemuImgCreateWrote()
    {
        using var dir = new TempFolder();
        string path = dir.File("q.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=8192,refcount_bits=32,lazy_refcounts=on,compression_type=zstd", path, "7M").AssertSuccess();
        await using var node = (Qcow2Node)await Images.OpenAsync(path, readOnly: true);
        Assert.Equal(7 * Images.MiB, node.Size);
        Assert.Equal(3, node.Info.Version);
        Assert.Equal(8192, node.Info.ClusterSize);
        Assert.Equal(32, node.Info.RefcountBits);
        Assert.True(node.Info.LazyRefcounts);
        Assert.Equal("zstd", node.Info.CompressionType);
        Assert.Null(node.Info.BackingFile);
    }

    private static JsonElement Info(string path)
        => JsonDocument.Parse(Images.QemuImg("info", "--output=json", path).AssertSuccess().Stdout).RootElement;
}
