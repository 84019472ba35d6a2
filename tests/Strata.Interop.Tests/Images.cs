using System.Text.Json;
using Strata.Block;
using Strata.Formats;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>Shared steps of the interop tests: make images with Strata, ask QEMU's tools about them.</summary>
internal static class Images
{
    public const int MiB = 1 << 20;

    /// <summary>Creates an empty qcow2 image with Strata's driver.</summary>
    public static async Task CreateQcow2Async(string path, Qcow2CreateOptions options)
    {
        await using var file = RawFileNode.Create(path, 0);
        await Qcow2Node.CreateAsync(file, options);
    }

    /// <summary>Opens an image and its chain with Strata (the format probed unless given).</summary>
    public static async Task<IBlockNode> OpenAsync(string path, bool readOnly = false, string? format = null)
        => await ImageOpener.OpenAsync(path, new ImageOpenOptions { ReadOnly = readOnly, Format = format });

    public static async Task<byte[]> ReadAllAsync(IBlockNode node)
    {
        var all = new byte[node.Size];
        const int Chunk = 1 << 20;
        for (long offset = 0; offset < all.Length; offset += Chunk)
        {
            int n = (int)Math.Min(Chunk, all.Length - offset);
            await node.ReadAsync(offset, all.AsMemory((int)offset, n));
        }

        return all;
    }

    public static ProcessResult QemuImg(params string[] args) => Processes.Run("qemu-img", args);

    public static ProcessResult QemuIo(string path, string format, params string[] commands)
    {
        var result = TestKit.QemuIo.Run(path, format, commands);
        Assert.True(result.ExitCode == 0 && !result.Stdout.Contains("error", StringComparison.OrdinalIgnoreCase)
            && !result.Stdout.Contains("fail", StringComparison.OrdinalIgnoreCase), result.ToString());
        return result;
    }

    /// <summary>Asserts <c>qemu-img check</c> finds neither corruption nor leak (exit 0, JSON counters 0).</summary>
    public static JsonElement AssertQemuCheckClean(string path, string context)
    {
        var result = QemuImg("check", "--output=json", "-f", "qcow2", path);
        Assert.True(result.ExitCode == 0, $"{context}: qemu-img check is not clean\n{result}");
        var json = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.True(Counter(json, "corruptions") == 0 && Counter(json, "leaks") == 0 && Counter(json, "check-errors") == 0,
            $"{context}: qemu-img check counters\n{result}");
        return json;
    }

    public static long Counter(JsonElement json, string name) => json.TryGetProperty(name, out var value) ? value.GetInt64() : 0;

    /// <summary>What QEMU reads from an image: <c>qemu-img convert -O raw</c>, as bytes.</summary>
    public static byte[] QemuReadAll(string path, string folder, string? format = null)
    {
        string raw = Path.Combine(folder, $"qemu-view-{Guid.NewGuid():N}.raw");
        var args = new List<string> { "convert" };
        if (format is not null)
        {
            args.AddRange(["-f", format]);
        }

        args.AddRange(["-O", "raw", path, raw]);
        Processes.Run("qemu-img", args).AssertSuccess();
        try
        {
            return File.ReadAllBytes(raw);
        }
        finally
        {
            File.Delete(raw);
        }
    }

    /// <summary>Asserts <c>qemu-img compare</c> finds the image equal to a raw reference.</summary>
    public static void AssertQemuCompareEqual(string image, string rawReference, string context)
    {
        var result = QemuImg("compare", "-F", "raw", image, rawReference);
        Assert.True(result.ExitCode == 0, $"{context}: qemu-img compare says the image differs from the model\n{result}");
    }

    /// <summary>Asserts two byte arrays are equal, naming the first differing offset.</summary>
    public static void AssertSameBytes(byte[] expected, byte[] actual, string context)
    {
        Assert.True(expected.Length == actual.Length, $"{context}: length {actual.Length}, expected {expected.Length}");
        int at = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(at == expected.Length, $"{context}: first difference at byte {at}: 0x{(at < actual.Length ? actual[at] : 0):x2}, expected 0x{(at < expected.Length ? expected[at] : 0):x2}");
    }

    /// <summary>
    /// Applies a workload to the node and the model, reading every touched range back after each
    /// request; any disagreement fails with the seed and the request index.
    /// </summary>
    public static async Task RunWorkloadAsync(IBlockNode node, DiskModel model, IReadOnlyList<DiskOp> ops, string context)
    {
        for (int i = 0; i < ops.Count; i++)
        {
            var op = ops[i];
            try
            {
                await op.ApplyAsync(node);
            }
            catch (Exception e)
            {
                throw new ModelMismatchException($"{context}: request #{i} {op} failed: {e.GetType().Name}: {e.Message}", e);
            }

            model.Apply(op);
            if (op.Kind == DiskOpKind.Flush)
            {
                continue;
            }

            var back = new byte[op.Length];
            await node.ReadAsync(op.Offset, back);
            long bad = model.FirstMismatch(op.Offset, back);
            Assert.True(bad < 0, $"{context}: after request #{i} {op}, byte {bad} reads 0x{(bad < 0 ? 0 : back[bad - op.Offset]):x2}, model 0x{(bad < 0 ? 0 : model.Bytes[(int)bad]):x2}");
        }
    }
}
