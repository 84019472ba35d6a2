using System.IO.Compression;
using Strata.Block;
using ZstdSharp;

namespace Strata.Formats.Qcow2;

/// <summary>
/// Decompression of compressed clusters (qcow2.txt, "Compressed Clusters Descriptor"): compression
/// type 0 is raw deflate (no zlib header), type 1 is a zstd stream. The stored bytes run to a sector
/// boundary, so trailing bytes after the stream are ignored.
/// </summary>
internal static class Qcow2Compression
{
    public const byte Zlib = 0;
    public const byte Zstd = 1;

    public static void Decompress(byte type, ReadOnlySpan<byte> source, Span<byte> cluster, long guestOffset)
    {
        int done = 0;
        try
        {
            using var input = new MemoryStream(source.ToArray(), writable: false);
            using Stream stream = type == Zstd ? new DecompressionStream(input) : new DeflateStream(input, CompressionMode.Decompress);
            while (done < cluster.Length)
            {
                int n = stream.Read(cluster[done..]);
                if (n == 0)
                {
                    break;
                }

                done += n;
            }
        }
        catch (Exception e) when (e is InvalidDataException or ZstdException or IOException or ArgumentException or InvalidOperationException)
        {
            throw BlockException.Corrupt($"qcow2: compressed cluster at guest offset 0x{guestOffset:x} cannot be decompressed: {e.Message}");
        }

        if (done < cluster.Length)
        {
            throw BlockException.Corrupt($"qcow2: compressed cluster at guest offset 0x{guestOffset:x} decompresses to {done} bytes, not {cluster.Length}");
        }
    }
}
