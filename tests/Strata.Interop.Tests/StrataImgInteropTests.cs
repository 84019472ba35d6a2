using System.Text.Json;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>
/// <c>strata img</c> and <c>qemu-img</c> side by side on the same files: what one writes the other
/// reads, and where both answer the same question (check, compare, map, info) they agree.
/// </summary>
public sealed class StrataImgInteropTests
{
    [Fact]
    public void CreateWithARelativeBackingWorksAsWrittenAndQemuImgAgrees()
    {
        using var dir = new TempFolder("cli");
        Images.QemuImg("create", "-f", "raw", dir.File("foo.img"), "16M").AssertSuccess();
        string overlay = dir.File("tmp_disk.img");
        Processes.Strata("img", "create", "-f", "qcow2", "-b", "foo.img", overlay, "10G").AssertSuccess();
        var info = QemuInfo(overlay);
        Assert.Equal("qcow2", info.GetProperty("format").GetString());
        Assert.Equal(10L << 30, info.GetProperty("virtual-size").GetInt64());
        Assert.Equal("foo.img", info.GetProperty("backing-filename").GetString());
        Assert.Equal(dir.File("foo.img"), info.GetProperty("full-backing-filename").GetString());

        // Given no -F, create probes the backing once and records what it found.
        Assert.Equal("raw", info.GetProperty("backing-filename-format").GetString());
        Images.AssertQemuCheckClean(overlay, "strata img create");
    }

    [Fact]
    public void CreateWithoutASizeTakesTheBackingImageSize()
    {
        using var dir = new TempFolder("cli");
        Images.QemuImg("create", "-f", "qcow2", dir.File("base.qcow2"), "7M").AssertSuccess();
        Processes.Strata("img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", dir.File("top.qcow2")).AssertSuccess();
        Assert.Equal(7L << 20, QemuInfo(dir.File("top.qcow2")).GetProperty("virtual-size").GetInt64());
    }

    [Fact]
    public void InfoJsonAgreesWithQemuImgInfoOnEveryKeyField()
    {
        using var dir = new TempFolder("cli");
        Images.QemuImg("create", "-f", "raw", dir.File("base.raw"), "3M").AssertSuccess();
        string path = dir.File("over.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw", path).AssertSuccess();
        var qemu = QemuInfo(path);
        var strata = JsonDocument.Parse(Processes.Strata("img", "info", "--output=json", path).AssertSuccess().Stdout).RootElement;
        foreach (string key in new[] { "format", "virtual-size", "cluster-size", "backing-filename", "backing-filename-format", "full-backing-filename" })
        {
            Assert.True(strata.TryGetProperty(key, out var value), $"strata img info has no '{key}': {strata}");
            Assert.Equal(qemu.GetProperty(key).ToString(), value.ToString());
        }

        Assert.Equal(
            qemu.GetProperty("format-specific").GetProperty("data").GetProperty("compat").GetString(),
            strata.GetProperty("format-specific").GetProperty("data").GetProperty("compat").GetString());
    }

    [Theory]
    [InlineData("clean", 0)]
    [InlineData("leak", 3)]
    [InlineData("corrupt", 2)]
    public void CheckExitCodeMatchesQemuImgCheck(string state, int expected)
    {
        using var dir = new TempFolder("cli");
        var builder = new Qcow2ImageBuilder();
        switch (state)
        {
            case "leak":
                // The data cluster keeps refcount 1 but nothing points to it any more.
                builder.L2Entry0 = 0;
                break;
            case "corrupt":
                // The data cluster is used by L2[0] but its refcount says free.
                builder.Patch(builder.RefcountBlockOffset + (2 * (builder.DataOffset / builder.ClusterSize)), 0, 0);
                break;
            default:
                break;
        }

        string path = builder.WriteTo(dir.File($"{state}.qcow2"));
        var qemu = Images.QemuImg("check", path);
        Assert.True(qemu.ExitCode == expected, $"the crafted image is not what the test thinks: {qemu}");
        var strata = Processes.Strata("img", "check", path);
        Assert.True(strata.ExitCode == expected, $"strata img check exits {strata.ExitCode}, qemu-img check {qemu.ExitCode}\n{strata}\n{qemu}");
    }

    [Fact]
    public void CheckRepairLeaksLeavesAnImageQemuImgCheckFindsClean()
    {
        using var dir = new TempFolder("cli");
        string path = new Qcow2ImageBuilder { L2Entry0 = 0 }.WriteTo(dir.File("leak.qcow2"));
        var repair = Processes.Strata("img", "check", "-r", "leaks", path);
        Assert.True(repair.ExitCode == 0, repair.ToString());
        Images.AssertQemuCheckClean(path, "after strata img check -r leaks");
    }

    [Fact]
    public void CompareExitCodesMatchQemuImgCompare()
    {
        using var dir = new TempFolder("cli");
        string a = dir.File("a.qcow2");
        string b = dir.File("b.raw");
        string c = dir.File("c.raw");
        Images.QemuImg("create", "-f", "qcow2", a, "2M").AssertSuccess();
        Images.QemuIo(a, "qcow2", "write -P 0x31 64k 4k");
        Images.QemuImg("convert", "-O", "raw", a, b).AssertSuccess();
        Images.QemuImg("convert", "-O", "raw", a, c).AssertSuccess();
        Images.QemuIo(c, "raw", "write -P 0x32 1M 512");
        foreach (var (left, right, expected) in new[] { (a, b, 0), (a, c, 1), (b, c, 1) })
        {
            var qemu = Images.QemuImg("compare", left, right);
            var strata = Processes.Strata("img", "compare", left, right);
            Assert.True(qemu.ExitCode == expected && strata.ExitCode == expected, $"compare {Path.GetFileName(left)} {Path.GetFileName(right)}\n{strata}\n{qemu}");
        }

        var missing = Processes.Strata("img", "compare", a, dir.File("missing.raw"));
        Assert.True(missing.ExitCode == 2, missing.ToString());
    }

    [Fact]
    public void MapJsonAgreesWithQemuImgMap()
    {
        using var dir = new TempFolder("cli");
        Images.QemuImg("create", "-f", "raw", dir.File("base.raw"), "4M").AssertSuccess();
        Images.QemuIo(dir.File("base.raw"), "raw", "write -P 0x01 0 1M");
        string path = dir.File("top.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=65536", "-b", "base.raw", "-F", "raw", path).AssertSuccess();
        Images.QemuIo(path, "qcow2", "write -P 0x02 512k 128k", "write -z 2M 256k", "write -P 0x03 3M 64k");
        var qemu = MapEntries(Images.QemuImg("map", "--output=json", path).AssertSuccess().Stdout);
        var strata = MapEntries(Processes.Strata("img", "map", "--output=json", path).AssertSuccess().Stdout);
        Assert.Equal(qemu, strata);
    }

    [Fact]
    public async Task ConvertToQcow2WritesAnImageQemuChecksCleanAndComparesEqual()
    {
        int seed = Workload.NewSeed();
        using var dir = new TempFolder("cli");
        string src = dir.File("src.raw");
        var model = new DiskModel(4 * Images.MiB);
        await using (var node = Strata.Formats.Raw.RawFileNode.Create(src, model.Size))
        {
            await Images.RunWorkloadAsync(node, model, Workload.Generate(seed, model.Size, 60), $"seed {seed}");
        }

        string dst = dir.File("dst.qcow2");
        Processes.Strata("img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", src, dst).AssertSuccess();
        Images.AssertQemuCheckClean(dst, $"strata img convert, seed {seed}");
        Images.AssertQemuCompareEqual(dst, src, $"strata img convert, seed {seed}");

        // And back to raw, as qemu-img converts it.
        string back = dir.File("back.raw");
        Processes.Strata("img", "convert", "-O", "raw", dst, back).AssertSuccess();
        Images.AssertSameBytes(File.ReadAllBytes(src), File.ReadAllBytes(back), $"round trip, seed {seed}");
    }

    [Fact]
    public void CommitLeavesTheSameBaseAsQemuImgCommit()
    {
        using var dir = new TempFolder("cli");
        foreach (string who in new[] { "qemu", "strata" })
        {
            string baseImage = dir.File($"{who}-base.qcow2");
            string top = dir.File($"{who}-top.qcow2");
            Images.QemuImg("create", "-f", "qcow2", baseImage, "4M").AssertSuccess();
            Images.QemuIo(baseImage, "qcow2", "write -P 0x10 0 4M");
            Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", $"{who}-base.qcow2", "-F", "qcow2", top).AssertSuccess();
            Images.QemuIo(top, "qcow2", "write -P 0x20 4k 8k", "write -z 1M 64k", "write -P 0x30 3M 1000");
        }

        Images.QemuImg("commit", dir.File("qemu-top.qcow2")).AssertSuccess();
        Processes.Strata("img", "commit", dir.File("strata-top.qcow2")).AssertSuccess();
        Images.AssertQemuCheckClean(dir.File("strata-base.qcow2"), "base after strata img commit");
        Images.AssertQemuCheckClean(dir.File("strata-top.qcow2"), "top after strata img commit");
        var same = Images.QemuImg("compare", dir.File("qemu-base.qcow2"), dir.File("strata-base.qcow2"));
        Assert.True(same.ExitCode == 0, same.ToString());
        var tops = Images.QemuImg("compare", dir.File("qemu-top.qcow2"), dir.File("strata-top.qcow2"));
        Assert.True(tops.ExitCode == 0, tops.ToString());
    }

    [Fact]
    public void RebaseUnsafeRecordsTheNewBackingAsQemuImgReadsIt()
    {
        using var dir = new TempFolder("cli");
        Images.QemuImg("create", "-f", "raw", dir.File("old.raw"), "2M").AssertSuccess();
        Images.QemuImg("create", "-f", "raw", dir.File("new.raw"), "2M").AssertSuccess();
        string path = dir.File("over.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-b", "old.raw", "-F", "raw", path).AssertSuccess();
        Processes.Strata("img", "rebase", "-u", "-b", "new.raw", "-F", "raw", path).AssertSuccess();
        var info = QemuInfo(path);
        Assert.Equal("new.raw", info.GetProperty("backing-filename").GetString());
        Assert.Equal("raw", info.GetProperty("backing-filename-format").GetString());
        Images.AssertQemuCheckClean(path, "after rebase -u");
    }

    [Fact]
    public void ResizeGrowsTheImageAsQemuImgSeesIt()
    {
        using var dir = new TempFolder("cli");
        string path = dir.File("r.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=512", path, "1M").AssertSuccess();
        Images.QemuIo(path, "qcow2", "write -P 0x44 0 64k");
        Processes.Strata("img", "resize", path, "64M").AssertSuccess();
        Assert.Equal(64L << 20, QemuInfo(path).GetProperty("virtual-size").GetInt64());
        Images.AssertQemuCheckClean(path, "after strata img resize");
        Images.QemuIo(path, "qcow2", "read -P 0x44 0 64k", "write -P 0x45 60M 4k", "read -P 0x45 60M 4k");
        Images.AssertQemuCheckClean(path, "after qemu-io writes past the old end");
    }

    [Theory]
    [InlineData("raw")]
    [InlineData("qcow2")]
    public void BenchWithTheSameArgumentsWritesTheSameOffsetsAsQemuImgBench(string format)
    {
        // The benchmark's claim: same arguments, same requests. A scattered step that wraps, written
        // with a pattern, must leave both images byte for byte alike.
        using var dir = new TempFolder("cli");
        string qemu = dir.File($"qemu.{format}");
        string strata = dir.File($"strata.{format}");
        foreach (string path in new[] { qemu, strata })
        {
            Images.QemuImg("create", "-f", format, path, "8M").AssertSuccess();
        }

        string[] args = ["bench", "-f", format, "-w", "-c", "700", "-d", "8", "-s", "4096", "-S", (4096L * 7919).ToString(), "--pattern=90"];
        var q = Processes.Run("qemu-img", [.. args, qemu]).AssertSuccess();
        var s = Processes.Strata(["img", .. args, strata]).AssertSuccess();
        Assert.Contains("Run completed in", s.Stdout, StringComparison.Ordinal);
        Assert.Equal(q.Stdout.Split('\n')[0], s.Stdout.Split('\n')[0]);
        var same = Images.QemuImg("compare", "-f", format, "-F", format, qemu, strata);
        Assert.True(same.ExitCode == 0, $"the two benches wrote different bytes\n{same}\n{q}\n{s}");
    }

    private static JsonElement QemuInfo(string path)
        => JsonDocument.Parse(Images.QemuImg("info", "--output=json", path).AssertSuccess().Stdout).RootElement;

    /// <summary>The entries of a <c>map --output=json</c>, with the fields qemu-img prints, as comparable strings.</summary>
    private static List<string> MapEntries(string json)
        => JsonDocument.Parse(json).RootElement.EnumerateArray().Select(e =>
            string.Join(' ', new[] { "start", "length", "depth", "present", "zero", "data", "offset" }
                .Select(k => e.TryGetProperty(k, out var v) ? $"{k}={v}" : $"{k}=-"))).ToList();
}
