using Strata.Formats.Raw;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>Raw images written by Strata against QEMU's view of the same file, and the other way round.</summary>
public sealed class RawImageInteropTests
{
    [Fact]
    public async Task StrataWrittenRawImageEqualsTheModelUnderQemuImgCompare()
    {
        int seed = Workload.NewSeed();
        string context = $"seed {seed}";
        using var dir = new TempFolder();
        string path = dir.File("disk.raw");
        var model = new DiskModel(4 * Images.MiB);
        await using (var node = RawFileNode.Create(path, model.Size))
        {
            await Images.RunWorkloadAsync(node, model, Workload.Generate(seed, model.Size, 200), context);
            await model.VerifyAndAdoptAsync(node, context);
        }

        model.WriteRaw(dir.File("ref.raw"));
        Images.AssertQemuCompareEqual(path, dir.File("ref.raw"), context);
    }

    [Fact]
    public async Task QemuIoWritesToARawImageReadIdenticallyThroughStrata()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.raw");
        Images.QemuImg("create", "-f", "raw", path, "3M").AssertSuccess();
        Images.QemuIo(path, "raw", "write -P 0x11 0 64k", "write -P 0x22 1000 3000", "write -P 0x33 1M 512k", "write -z 1100k 100k");
        byte[] expected = Images.QemuReadAll(path, dir.Path, "raw");
        await using var node = await Images.OpenAsync(path, readOnly: true);
        Assert.Equal("raw", node.DriverName);
        Images.AssertSameBytes(expected, await Images.ReadAllAsync(node), "raw written by qemu-io");
    }

    [Fact]
    public async Task DiscardedRangeIsAHoleForStrataAndForQemuImgMap()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.raw");
        await using (var node = RawFileNode.Create(path, 4 * Images.MiB))
        {
            await node.WriteAsync(0, Workload.Pattern(new Random(1), 4 * Images.MiB));
            await node.DiscardAsync(Images.MiB, Images.MiB);
            await node.FlushAsync();
            var extent = await node.GetBlockStatusAsync(Images.MiB, Images.MiB);
            Assert.True(extent.IsZero && !extent.IsData, $"Strata reports {extent} for the discarded range");
        }

        var map = Images.QemuImg("map", "--output=json", "-f", "raw", path).AssertSuccess();
        var entries = System.Text.Json.JsonDocument.Parse(map.Stdout).RootElement.EnumerateArray()
            .Select(e => (Start: e.GetProperty("start").GetInt64(), Length: e.GetProperty("length").GetInt64(), Data: e.GetProperty("data").GetBoolean()))
            .ToList();
        Assert.Contains(entries, e => !e.Data && e.Start <= Images.MiB && e.Start + e.Length >= 2 * Images.MiB);
        Assert.Contains(entries, e => e.Data && e.Start == 0);
    }
}
