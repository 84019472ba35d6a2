using Strata.Formats.Qcow2;

namespace Strata.Formats.Tests;

/// <summary>
/// Allocating writes, a new L2 table, L1 growth (resize) and refcount-table growth (with 512-byte
/// clusters and 64-bit refcounts one refcount block covers 64 clusters), with flushes between. Within
/// one flush interval no two requests touch the same byte, so after a crash every byte holds either
/// its value at the last completed flush or its latest written value.
/// </summary>
public sealed class CrashWorkload(long finalSize)
{
    /// <summary>The content at the last completed flush (null before the first).</summary>
    public byte[]? Durable { get; private set; }

    /// <summary>The content as last written.</summary>
    public byte[] Current { get; } = new byte[finalSize];

    public async Task RunAsync(Qcow2Node node)
    {
        await WriteAsync(node, 0, 1000, 1);
        await FlushAsync(node);
        await WriteAsync(node, 200_000, 3000, 2);
        await WriteAsync(node, 700, 100, 3);
        await FlushAsync(node);
        await node.ResizeAsync(finalSize);
        await WriteAsync(node, finalSize - 5000, 5000, 4);
        await FlushAsync(node);
        await WriteAsync(node, 300_000, 40_000, 5);
        await node.WriteZeroesAsync(0, 1024);
        Array.Clear(Current, 0, 1024);
        await FlushAsync(node);
        await node.DiscardAsync(300_000, 20_480);
        var now = new byte[20_480];
        await node.ReadAsync(300_000, now);
        now.CopyTo(Current, 300_000);
        await FlushAsync(node);
    }

    private async Task WriteAsync(Qcow2Node node, long offset, int length, int seed)
    {
        var data = Qcow2TestImage.Pattern(length, seed);
        data.CopyTo(Current, offset);
        await node.WriteAsync(offset, data);
    }

    private async Task FlushAsync(Qcow2Node node)
    {
        await node.FlushAsync();
        Durable = (byte[])Current.Clone();
    }
}
