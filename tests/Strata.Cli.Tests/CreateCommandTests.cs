using System.Text.Json;
using Strata.TestKit;

namespace Strata.Cli.Tests;

public sealed class CreateCommandTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("10G", 10L << 30)]
    [InlineData("1.5M", 3L << 19)]
    [InlineData("512k", 512L << 10)]
    [InlineData("64K", 64L << 10)]
    [InlineData("1T", 1L << 40)]
    [InlineData("12345", 12345L)]
    [InlineData("4096b", 4096L)]
    public void SizesTakeQemuSuffixes(string size, long bytes)
    {
        var result = StrataCli.ImgOk("create", "-f", "raw", _dir.File("a.img"), size);
        Assert.Equal($"Formatting '{_dir.File("a.img")}', fmt=raw size={bytes}\n", result.Stdout);
        Assert.Equal(bytes, new FileInfo(_dir.File("a.img")).Length);
    }

    [Theory]
    [InlineData("2P", 2L << 50)]
    [InlineData("1.5E", 3L << 59)]
    public void HugeSizesParseWithoutCreatingAFile(string size, long bytes)
    {
        Assert.True(Formats.ImageCreator.TryParseSize(size, out long parsed));
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("12Q")]
    [InlineData("8E")]
    [InlineData("abc")]
    [InlineData("1.5")]
    [InlineData("")]
    public void BadSizesAreOneLineErrors(string size)
    {
        var result = StrataCli.Img("create", _dir.File("a.img"), size);
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("strata img: Invalid image size specified", result.Stderr);
        Assert.Single(result.Stderr.TrimEnd('\n').Split('\n'));
        Assert.False(File.Exists(_dir.File("a.img")));
    }

    [Fact]
    public void TheSeedSpellingOfAnOverlayWorksAndRecordsTheProbedFormat()
    {
        StrataCli.ImgOk("create", "-f", "raw", _dir.File("foo.img"), "10G");
        var result = StrataCli.ImgOk("create", "-f", "qcow2", "-b", _dir.File("foo.img"), _dir.File("tmp_disk.img"), "10G");
        Assert.Contains("fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=10737418240", result.Stdout);
        Assert.Contains("backing_fmt=raw", result.Stdout);

        var info = JsonDocument.Parse(Processes.Run("qemu-img", "info", "--output=json", _dir.File("tmp_disk.img")).AssertSuccess().Stdout).RootElement;
        Assert.Equal("raw", info.GetProperty("backing-filename-format").GetString());
        Assert.Equal(10L << 30, info.GetProperty("virtual-size").GetInt64());
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("tmp_disk.img")).ExitCode);
    }

    [Fact]
    public void RelativeBackingResolvesAgainstTheOverlaysFolderAndSizeComesFromIt()
    {
        Directory.CreateDirectory(_dir.File("sub"));
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", _dir.File("base.qcow2"), "3M");
        var result = StrataCli.ImgOk("create", "-f", "qcow2", "-b", "../base.qcow2", _dir.File("sub/top.qcow2"));
        Assert.Contains("size=3145728 backing_file=../base.qcow2 backing_fmt=qcow2", result.Stdout);

        var info = JsonDocument.Parse(Processes.Run("qemu-img", "info", "--output=json", "--backing-chain", _dir.File("sub/top.qcow2")).AssertSuccess().Stdout).RootElement;
        Assert.Equal(2, info.GetArrayLength());
        Assert.Equal("qcow2", info[0].GetProperty("backing-filename-format").GetString());
        Assert.Equal("../base.qcow2", info[0].GetProperty("backing-filename").GetString());
    }

    [Fact]
    public void QcowOptionsReachTheHeader()
    {
        var result = StrataCli.ImgOk("create", "-f", "qcow2", "-o", "cluster_size=4k,refcount_bits=8", "-o", "lazy_refcounts=on,compression_type=zstd",
            _dir.File("o.qcow2"), "1G");
        Assert.Equal($"Formatting '{_dir.File("o.qcow2")}', fmt=qcow2 cluster_size=4096 extended_l2=off compression_type=zstd size=1073741824 lazy_refcounts=on refcount_bits=8\n",
            result.Stdout);
        var data = JsonDocument.Parse(Processes.Run("qemu-img", "info", "--output=json", _dir.File("o.qcow2")).AssertSuccess().Stdout).RootElement
            .GetProperty("format-specific").GetProperty("data");
        Assert.Equal("zstd", data.GetProperty("compression-type").GetString());
        Assert.True(data.GetProperty("lazy-refcounts").GetBoolean());
        Assert.Equal(8, data.GetProperty("refcount-bits").GetInt32());
        Assert.Equal(4096, JsonDocument.Parse(Processes.Run("qemu-img", "info", "--output=json", _dir.File("o.qcow2")).AssertSuccess().Stdout).RootElement.GetProperty("cluster-size").GetInt32());
    }

    [Theory]
    [InlineData("-f", "qcow2", "-F", "raw", "-b", "base.raw", "-o", "compat=1.1,cluster_size=128k")]
    [InlineData("-f", "qcow2", "-o", "size=2M,lazy_refcounts=on")]
    [InlineData("-f", "qcow2", "-o", "compat=0.10,cluster_size=4k", "2G")]
    [InlineData("-f", "qcow2", "-o", "refcount_bits=64,compression_type=zstd", "-F", "raw", "-b", "base.raw", "5M")]
    [InlineData("-f", "raw", "3M")]
    public void CreateWritesWhatQemuImgWritesByteForByteAndSaysTheSame(params string[] options)
    {
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("base.raw"), "1M").AssertSuccess();
        int file = Array.FindIndex(options, o => o is "2G" or "5M" or "3M");
        string[] Args(string name) => file < 0 ? ["create", .. options, _dir.File(name)] : ["create", .. options[..file], _dir.File(name), .. options[file..]];
        var qemu = Processes.Run("qemu-img", Args("q.img")).AssertSuccess();
        var strata = StrataCli.ImgOk(Args("s.img"));
        Assert.Equal(qemu.Stdout.Replace("q.img", "s.img", StringComparison.Ordinal), strata.Stdout);
        Assert.Equal(File.ReadAllBytes(_dir.File("q.img")), File.ReadAllBytes(_dir.File("s.img")));
    }

    [Fact]
    public void CompatZeroTenMakesAVersionTwoImage()
    {
        StrataCli.ImgOk("create", "-q", "-f", "qcow2", "-o", "compat=0.10", _dir.File("v2.qcow2"), "1M");
        Assert.Contains("compat: 0.10", Processes.Run("qemu-img", "info", _dir.File("v2.qcow2")).AssertSuccess().Stdout);
        Assert.Equal(0, Processes.Run("qemu-img", "check", _dir.File("v2.qcow2")).ExitCode);
    }

    [Fact]
    public void OptionHelpListsTheQcowOptions()
    {
        var result = StrataCli.ImgOk("create", "-f", "qcow2", "-o", "help");
        Assert.StartsWith("Supported options:\n", result.Stdout);
        Assert.Contains("  cluster_size=<size>    - qcow2 cluster size\n", result.Stdout);
        Assert.Contains("refcount_bits=<num>", result.Stdout);
    }

    [Theory]
    [InlineData("cluster_size=3k", "Cluster size must be a power of two between 512 and 2048k")]
    [InlineData("foo=bar", "Invalid parameter 'foo'")]
    [InlineData("refcount_bits=3", "Refcount width must be a power of two and may not exceed 64 bits")]
    public void BadOptionsAreRefusedWithoutCreatingAFile(string options, string message)
    {
        var result = StrataCli.Img("create", "-f", "qcow2", "-o", options, _dir.File("x.qcow2"), "1M");
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"strata img: {_dir.File("x.qcow2")}: {message}\n", result.Stderr);
        Assert.False(File.Exists(_dir.File("x.qcow2")));
    }

    [Fact]
    public void RawImagesHaveNoBackingFile()
    {
        var result = StrataCli.Img("create", "-f", "raw", "-b", "x", _dir.File("x.raw"), "1M");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Backing file not supported for file format 'raw'", result.Stderr);
    }

    [Fact]
    public void RawImagesMapLikeQemuImgCreatedOnes()
    {
        StrataCli.ImgOk("create", "-q", _dir.File("s.raw"), "1M");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", _dir.File("q.raw"), "1M").AssertSuccess();
        Assert.Equal(Processes.Run("qemu-img", "map", "--output=json", "-f", "raw", _dir.File("q.raw")).AssertSuccess().Stdout,
            Processes.Run("qemu-img", "map", "--output=json", "-f", "raw", _dir.File("s.raw")).AssertSuccess().Stdout);
    }
}
