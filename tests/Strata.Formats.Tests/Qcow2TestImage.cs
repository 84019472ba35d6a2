using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;

namespace Strata.Formats.Tests;

/// <summary>Helpers to create and open qcow2 images on files for tests.</summary>
public static class Qcow2TestImage
{
    public static async Task CreateAsync(string path, Qcow2CreateOptions options)
    {
        await using var file = RawFileNode.Create(path, 0);
        await Qcow2Node.CreateAsync(file, options);
    }

    public static async Task<Qcow2Node> OpenAsync(string path, bool readOnly = false, IBlockNode? backing = null)
    {
        var node = await Qcow2Node.OpenAsync(RawFileNode.Open(path, readOnly), readOnly);
        node.BackingEdge.Attach(backing, owns: true);
        return node;
    }

    public static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }
}
