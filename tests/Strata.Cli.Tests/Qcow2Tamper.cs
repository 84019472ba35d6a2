using System.Buffers.Binary;

namespace Strata.Cli.Tests;

/// <summary>Damages a qcow2 image's refcounts the way a crash or a bug would (docs/interop/qcow2.txt, "Host cluster management").</summary>
public static class Qcow2Tamper
{
    /// <summary>Sets the 16-bit refcount of host cluster <paramref name="cluster"/> in the first refcount block.</summary>
    public static void SetRefcount(string path, int cluster, ushort value)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var header = new byte[104];
        file.ReadExactly(header);
        long tableOffset = BinaryPrimitives.ReadInt64BigEndian(header.AsSpan(48));
        var entry = new byte[8];
        file.Position = tableOffset;
        file.ReadExactly(entry);
        long block = BinaryPrimitives.ReadInt64BigEndian(entry);
        var bytes = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        file.Position = block + (2 * cluster);
        file.Write(bytes);
    }
}
