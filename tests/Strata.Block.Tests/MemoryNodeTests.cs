namespace Strata.Block.Tests;

public sealed class MemoryNodeTests
{
    [Fact]
    public async Task WrittenBytesReadBack()
    {
        var node = new MemoryNode(65536);
        await node.WriteAsync(100, new byte[] { 1, 2, 3 });
        var buffer = new byte[5];
        await node.ReadAsync(99, buffer);
        Assert.Equal(new byte[] { 0, 1, 2, 3, 0 }, buffer);
    }

    [Fact]
    public async Task NeverWrittenPagesReportZero()
    {
        var node = new MemoryNode(65536);
        await node.WriteAsync(8192, new byte[4096]);
        var first = await node.GetBlockStatusAsync(0, 65536);
        var second = await node.GetBlockStatusAsync(8192, 65536 - 8192);
        Assert.Equal(BlockState.Allocated | BlockState.Zero, first.State);
        Assert.Equal(8192, first.Length);
        Assert.Equal(BlockState.Allocated | BlockState.Data, second.State);
        Assert.Equal(4096, second.Length);
    }

    [Fact]
    public async Task DiscardOfWholePagesMakesThemReadAsZeroHoles()
    {
        var node = new MemoryNode(65536);
        await node.WriteAsync(0, Enumerable.Repeat((byte)7, 65536).ToArray());
        await node.DiscardAsync(4096, 8192);
        var status = await node.GetBlockStatusAsync(4096, 8192);
        Assert.True(status.IsZero);
        Assert.All(node.ToArray().AsSpan(4096, 8192).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(7, node.ToArray()[4095]);
    }

    [Fact]
    public async Task ReadOnlyNodeRefusesWrites()
    {
        var node = new MemoryNode(4096, readOnly: true);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, new byte[1]));
        Assert.Equal(BlockError.ReadOnly, e.Error);
    }
}
