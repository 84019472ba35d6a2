using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>The hostile-image builder is only useful if its untouched output is a valid image QEMU agrees with.</summary>
public sealed class Qcow2ImageBuilderTests
{
    [Theory]
    [InlineData(9, 3u)]
    [InlineData(12, 3u)]
    [InlineData(16, 3u)]
    [InlineData(16, 2u)]
    [InlineData(21, 3u)]
    public void UntouchedImagePassesQemuImgCheckAndReadsItsPattern(int clusterBits, uint version)
    {
        using var dir = new TempFolder();
        var builder = new Qcow2ImageBuilder(clusterBits, 4 * Images.MiB) { Version = version, DataPattern = 0xa7 };
        string path = builder.WriteTo(dir.File("built.qcow2"));
        Images.AssertQemuCheckClean(path, $"cluster_bits {clusterBits} v{version}");
        byte[] seen = Images.QemuReadAll(path, dir.Path, "qcow2");
        Assert.Equal(4 * Images.MiB, seen.Length);
        Assert.All(seen.AsSpan(0, builder.ClusterSize).ToArray(), b => Assert.Equal(0xa7, b));
        int nonZero = seen.AsSpan(builder.ClusterSize).IndexOfAnyExcept((byte)0);
        Assert.True(nonZero < 0, $"unmapped guest byte {nonZero + builder.ClusterSize} is not zero");
    }

    [Fact]
    public void BackingNameAndFormatAreWhereQemuLooks()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(dir.File("base.raw"), new byte[4 * Images.MiB]);
        var builder = new Qcow2ImageBuilder { BackingFile = "base.raw", BackingFormat = "raw" };
        string path = builder.WriteTo(dir.File("over.qcow2"));
        var result = Images.QemuImg("info", "--output=json", path).AssertSuccess();
        var json = System.Text.Json.JsonDocument.Parse(result.Stdout).RootElement;
        Assert.Equal("base.raw", json.GetProperty("backing-filename").GetString());
        Assert.Equal("raw", json.GetProperty("backing-filename-format").GetString());
        Images.AssertQemuCheckClean(path, "backed builder image");
    }
}
