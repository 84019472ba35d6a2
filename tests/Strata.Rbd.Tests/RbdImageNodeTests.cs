using Strata.Block;
using Strata.Formats.Rbd;
using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>The rbd protocol node against a real cluster, with the rbd tool as the oracle.</summary>
public sealed class RbdImageNodeTests
{
    private const long Size = 16 << 20;

    [Fact]
    public async Task WrittenBytesAreWhatRbdExportReads()
    {
        using var image = new RbdImage();
        var expected = new byte[Size];
        await using (var node = await image.CreateAsync(Size))
        {
            Assert.Equal(Size, node.Size);
            var data = Pattern(1 << 20, 7);
            await node.WriteAsync(4096, data);
            data.CopyTo(expected, 4096);
            await node.WriteAsync(Size - 512, data.AsMemory(0, 512), WriteFlags.Fua);
            data.AsSpan(0, 512).CopyTo(expected.AsSpan((int)Size - 512));
            await node.FlushAsync();

            var back = new byte[(1 << 20) + 8192];
            await node.ReadAsync(0, back);
            Assert.True(back.AsSpan().SequenceEqual(expected.AsSpan(0, back.Length)));
        }

        Assert.True(image.Export().AsSpan().SequenceEqual(expected));
    }

    [Fact]
    public async Task WriteZeroesAndDiscardReadBackAsZeroes()
    {
        using var image = new RbdImage();
        await using var node = await image.CreateAsync(Size);
        await node.WriteAsync(0, Pattern((int)Size, 3));
        await node.WriteZeroesAsync(4 << 20, 4 << 20, ZeroFlags.MayUnmap);
        await node.WriteZeroesAsync(100, 1000);
        await node.DiscardAsync(12 << 20, 4 << 20);
        var back = new byte[Size];
        await node.ReadAsync(0, back);
        Assert.True(back.AsSpan(4 << 20, 4 << 20).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(back.AsSpan(100, 1000).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(back.AsSpan(12 << 20, 4 << 20).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(Pattern((int)Size, 3)[99], back[99]);
        Assert.Equal(Pattern((int)Size, 3)[1100], back[1100]);
    }

    [Fact]
    public async Task BlockStatusReportsWrittenObjectsAsDataAndTheRestAsZero()
    {
        using var image = new RbdImage();
        await using var node = await image.CreateAsync(Size);
        await node.WriteAsync(5 << 20, Pattern(4096, 1));

        // 4 MiB objects: the one holding 5 MiB is data, the one before it a hole.
        var first = await node.GetBlockStatusAsync(0, Size);
        Assert.Equal(new BlockExtent(0, 4 << 20, BlockState.Allocated | BlockState.Zero), first);
        var second = await node.GetBlockStatusAsync(4 << 20, Size - (4 << 20));
        Assert.True(second.IsData);
        Assert.Equal(8 << 20, second.End);
        var inside = await node.GetBlockStatusAsync(6 << 20, 1 << 20);
        Assert.Equal(new BlockExtent(6 << 20, 1 << 20, BlockState.Allocated | BlockState.Data, 6 << 20), inside);
        var tail = await node.GetBlockStatusAsync(8 << 20, Size - (8 << 20));
        Assert.True(tail.IsZero);
        Assert.Equal(Size, tail.End);
    }

    [Fact]
    public async Task ResizeChangesTheSizeRbdReports()
    {
        using var image = new RbdImage();
        await using var node = await image.CreateAsync(Size);
        await node.ResizeAsync(Size * 2);
        Assert.Equal(Size * 2, node.Size);
        Assert.Contains("32 MiB", RbdImage.Cluster.Rbd("info", image.Spec), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ASecondWriterIsRefusedWhileTheFirstHoldsTheLock()
    {
        using var image = new RbdImage();
        await using var first = await image.CreateAsync(Size);
        await using var second = await image.OpenAsync();
        var refused = Assert.Throws<BlockException>(() => second.SetPermissions(NodePermissions.Writer, PermissionCheck.Conflicts));
        Assert.Equal(BlockError.Locked, refused.Error);
        Assert.Contains("exclusive lock", refused.Message, StringComparison.Ordinal);

        // Given up by the first, the lock is the second's.
        first.SetPermissions(NodePermissions.Reader, PermissionCheck.Conflicts);
        second.SetPermissions(NodePermissions.Writer, PermissionCheck.Conflicts);
        Assert.True(((RbdImageNode)second).HoldsLock);
        await second.WriteAsync(0, Pattern(4096, 9));
    }

    [Fact]
    public async Task QemuIoCannotWriteAnImageStrataHolds()
    {
        using var image = new RbdImage();
        await using var node = await image.CreateAsync(Size);
        var result = QemuIo.Run(image.Locator, "raw", "write -P 0x55 0 4k");
        Assert.True(result.ExitCode != 0 || result.Stdout.Contains("fail", StringComparison.OrdinalIgnoreCase)
            || result.Stderr.Length > 0, $"qemu-io wrote an image Strata holds:\n{result}");
        var back = new byte[4096];
        await node.ReadAsync(0, back);
        Assert.True(back.AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public async Task ASnapshotOpensReadOnlyAndKeepsItsPointInTime()
    {
        using var image = new RbdImage();
        await using var node = await image.CreateAsync(Size);
        await node.WriteAsync(0, Pattern(8192, 4));
        await node.FlushAsync();
        RbdImage.Cluster.Rbd("snap", "create", image.Spec + "@s1");
        await node.WriteAsync(0, Pattern(8192, 5));

        await using var snapshot = await RbdImage.OpenAsync(image.SnapshotLocator("s1"));
        Assert.NotEqual(0, (int)(snapshot.Capabilities & NodeCapabilities.ReadOnly));
        var back = new byte[8192];
        await snapshot.ReadAsync(0, back);
        Assert.Equal(Pattern(8192, 4), back);
        await Assert.ThrowsAsync<BlockException>(async () => await snapshot.WriteAsync(0, back));
    }

    [Fact]
    public async Task CacheNoneOpensWithoutLibrbdsCacheAndTheDefaultWithItAsQemuDoes()
    {
        using var image = new RbdImage();
        await (await image.CreateAsync(Size)).DisposeAsync();

        // A locator option cannot turn the cache back on: the cache mode is set last, as in QEMU.
        await using var cached = (RbdImageNode)await image.OpenAsync();
        await using var direct = (RbdImageNode)await RbdImage.OpenAsync(image.Locator + ":rbd_cache=true", readOnly: true, direct: true);
        Assert.True(cached.ClientCache);
        Assert.False(direct.ClientCache);
    }

    [Fact]
    public async Task WritesTheCacheAcknowledgedEarlyAreInTheClusterWhenAFlushReturns()
    {
        const int count = 256;
        using var image = new RbdImage();
        await using var node = (RbdImageNode)await image.CreateAsync(Size);
        Assert.True(node.ClientCache);

        // The first flush ends librbd's write-through start (rbd_cache_writethrough_until_flush):
        // from then on its write-around cache acknowledges a write once it is sent.
        await node.FlushAsync();
        var data = Pattern(count * 4096, 11);
        var writes = new Task[count];
        for (int i = 0; i < count; i++)
        {
            // Scattered over the image's four objects, all in flight at once.
            long offset = (long)(i * 61 % count) * (Size / count);
            writes[i] = node.WriteAsync(offset, data.AsMemory(i * 4096, 4096)).AsTask();
        }

        await Task.WhenAll(writes);
        await node.FlushAsync();

        // Read by another client while this one still has the image open.
        var exported = image.Export();
        for (int i = 0; i < count; i++)
        {
            long offset = (long)(i * 61 % count) * (Size / count);
            Assert.True(exported.AsSpan((int)offset, 4096).SequenceEqual(data.AsSpan(i * 4096, 4096)), $"write {i} at {offset} is not in the cluster");
        }
    }

    [Fact]
    public async Task AMissingImageIsOneClearLine()
    {
        var error = await Assert.ThrowsAsync<BlockException>(async () => await RbdImage.OpenAsync(RbdImage.Cluster.RbdLocator("nosuchimage")));
        Assert.Equal(BlockError.InvalidArgument, error.Error);
        Assert.Contains("no image 'nosuchimage'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARequestLibrbdRefusesIsOneLineNamingTheImageAndOffsetAndTheNodeGoesOn()
    {
        using var image = new RbdImage();
        await using var node = await image.CreateAsync(Size);
        var buffer = new byte[4096];
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var error = await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(Size + 4096, buffer));
            Assert.StartsWith($"Could not read '{image.Locator}' at offset {Size + 4096}", error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', error.Message);
        }

        // The failed requests' pooled completions serve the next ones.
        await node.WriteAsync(0, Pattern(4096, 5));
        await node.ReadAsync(0, buffer);
        Assert.Equal(Pattern(4096, 5), buffer);
    }

    internal static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
