using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>
/// qcow2 images written by QEMU's tools read through Strata byte for byte as QEMU reads them
/// (<c>qemu-img convert -O raw</c> of the same image is the expected content).
/// </summary>
public sealed class QemuWrittenQcow2Tests
{
    // Full clusters, partial clusters, an unaligned write, zero clusters and a discard.
    private static readonly string[] Writes =
    [
        "write -P 0x11 0 64k",
        "write -P 0x22 100k 7k",
        "write -P 0x33 1000 3000",
        "write -P 0x44 1M 1M",
        "write -z 1536k 128k",
        "discard 1088k 64k",
        "write -P 0x55 3M 4k",
    ];

    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(2 * 1024 * 1024)]
    public async Task QemuIoPatternWritesReadIdenticallyThroughStrata(int clusterSize)
    {
        using var dir = new TempFolder();
        string path = dir.File("q.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", $"cluster_size={clusterSize}", path, "4M").AssertSuccess();
        Images.QemuIo(path, "qcow2", Writes);
        await AssertStrataReadsAsQemuAsync(path, dir, $"cluster {clusterSize}");
    }

    [Fact]
    public async Task Compat010ImageReadsIdenticallyThroughStrata()
    {
        using var dir = new TempFolder();
        string path = dir.File("v2.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", "compat=0.10", path, "4M").AssertSuccess();
        Images.QemuIo(path, "qcow2", Writes);
        await AssertStrataReadsAsQemuAsync(path, dir, "compat=0.10");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(32)]
    [InlineData(64)]
    public async Task ImageWithAnyRefcountWidthReadsIdenticallyThroughStrata(int refcountBits)
    {
        using var dir = new TempFolder();
        string path = dir.File("rc.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", $"refcount_bits={refcountBits},cluster_size=4096", path, "4M").AssertSuccess();
        Images.QemuIo(path, "qcow2", Writes);
        await AssertStrataReadsAsQemuAsync(path, dir, $"refcount_bits={refcountBits}");

        // Strata's own check agrees with qemu-img's: nothing wrong.
        await using var node = (Strata.Formats.Qcow2.Qcow2Node)await Images.OpenAsync(path, readOnly: true);
        var check = await node.CheckAsync(Strata.Formats.Qcow2.Qcow2RepairMode.None);
        Assert.True(check.Corruptions == 0 && check.Leaks == 0, $"refcount_bits={refcountBits}: Strata check says {string.Join("; ", check.Messages)}");
    }

    [Theory]
    [InlineData("zlib")]
    [InlineData("zstd")]
    public async Task CompressedImageFromQemuImgConvertReadsIdenticallyThroughStrata(string compression)
    {
        using var dir = new TempFolder();
        string raw = dir.File("src.raw");

        // Compressible content (runs and text) mixed with incompressible noise, which qemu stores plainly.
        var content = new byte[4 * Images.MiB];
        var random = new Random(7);
        for (int i = 0; i < content.Length; i += 4096)
        {
            switch (i / 4096 % 4)
            {
                case 0:
                    content.AsSpan(i, 4096).Fill((byte)(i / 4096));
                    break;
                case 1:
                    System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat($"block {i} of a compressible disk. ", 200))).AsSpan(0, 4096).CopyTo(content.AsSpan(i));
                    break;
                case 2:
                    random.NextBytes(content.AsSpan(i, 4096));
                    break;
                default:
                    break;
            }
        }

        File.WriteAllBytes(raw, content);
        string path = dir.File("c.qcow2");
        var args = new List<string> { "convert", "-c", "-f", "raw", "-O", "qcow2" };
        if (compression == "zstd")
        {
            args.AddRange(["-o", "compression_type=zstd"]);
        }

        args.AddRange([raw, path]);
        Processes.Run("qemu-img", args).AssertSuccess();
        var check = Images.AssertQemuCheckClean(path, compression);
        Assert.True(check.GetProperty("compressed-clusters").GetInt64() > 0, $"qemu-img stored nothing compressed: {check}");

        await using var node = await Images.OpenAsync(path, readOnly: true);
        Images.AssertSameBytes(content, await Images.ReadAllAsync(node), $"compressed with {compression}");
    }

    [Fact]
    public async Task QemuMadeBackingChainReadsIdenticallyThroughStrata()
    {
        using var dir = new TempFolder();
        string base0 = dir.File("base.qcow2");
        string mid = dir.File("mid.qcow2");
        string top = dir.File("top.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=65536", base0, "4M").AssertSuccess();
        Images.QemuIo(base0, "qcow2", "write -P 0x01 0 4M");
        Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.qcow2", "-F", "qcow2", mid).AssertSuccess();
        Images.QemuIo(mid, "qcow2", "write -P 0x02 1000 5000", "write -z 1M 64k", "discard 2M 512k", "write -P 0x03 3M 100k");
        Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=512", "-b", "mid.qcow2", "-F", "qcow2", top).AssertSuccess();
        Images.QemuIo(top, "qcow2", "write -P 0x04 0 700", "write -z 3M 4k", "write -P 0x05 2100k 3k");
        await AssertStrataReadsAsQemuAsync(top, dir, "qemu-made chain");
        await AssertStrataReadsAsQemuAsync(mid, dir, "qemu-made chain, middle");
    }

    [Fact]
    public async Task QemuOverlayOnARawBaseWithRecordedFormatReadsIdenticallyThroughStrata()
    {
        using var dir = new TempFolder();
        string base0 = dir.File("base.raw");
        string top = dir.File("top.qcow2");
        Images.QemuImg("create", "-f", "raw", base0, "2M").AssertSuccess();
        Images.QemuIo(base0, "raw", "write -P 0x0a 0 2M");
        Images.QemuImg("create", "-f", "qcow2", "-b", base0, "-F", "raw", top).AssertSuccess();
        Images.QemuIo(top, "qcow2", "write -P 0x0b 4k 4k", "write -P 0x0c 70000 1000");
        await AssertStrataReadsAsQemuAsync(top, dir, "overlay on raw");
    }

    private static async Task AssertStrataReadsAsQemuAsync(string path, TempFolder dir, string context)
    {
        byte[] expected = Images.QemuReadAll(path, dir.Path);
        await using var node = await Images.OpenAsync(path, readOnly: true);
        Images.AssertSameBytes(expected, await Images.ReadAllAsync(node), context);
    }
}
