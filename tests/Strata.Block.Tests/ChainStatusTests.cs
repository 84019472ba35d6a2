using Strata.TestKit;

namespace Strata.Block.Tests;

public sealed class ChainStatusTests
{
    [Fact]
    public async Task UnallocatedExtentOfTheTopFallsThroughToTheBacking()
    {
        var baseNode = new MemoryNode(1 << 20);
        await baseNode.WriteAsync(0, new byte[8192]);
        var top = new OverlayStub(baseNode, allocatedFrom: 65536);

        var e = await ChainStatus.GetAsync(top, 0, 1 << 20);

        Assert.Equal(1, e.Depth);
        Assert.Same(baseNode, e.Node);
        Assert.True(e.IsData);
        Assert.Equal(8192, e.Length);
    }

    [Fact]
    public async Task ExtentAllocatedInTheTopHasDepthZero()
    {
        var top = new OverlayStub(new MemoryNode(1 << 20), allocatedFrom: 65536);
        var e = await ChainStatus.GetAsync(top, 65536, 4096);
        Assert.Equal(0, e.Depth);
        Assert.Same(top, e.Node);
    }

    [Fact]
    public async Task BeyondTheEndOfAShortBackingReadsAsZeroes()
    {
        var top = new OverlayStub(new MemoryNode(4096), allocatedFrom: long.MaxValue, size: 1 << 20);
        var e = await ChainStatus.GetAsync(top, 8192, 4096);
        Assert.False(e.IsPresent);
        Assert.True(e.IsZero);
    }

    [Fact]
    public async Task EnumerationCoversTheRangeWithMergedExtents()
    {
        var node = new MemoryNode(1 << 20);
        await node.WriteAsync(4096, new byte[3 * 4096]);
        var extents = new List<ChainExtent>();
        await foreach (var e in ChainStatus.EnumerateAsync(node, 0, node.Size))
        {
            extents.Add(e);
        }

        Assert.Equal(3, extents.Count);
        Assert.Equal((4096L, 12288L), (extents[1].Offset, extents[1].Length));
        Assert.Equal(node.Size, extents[^1].End);
    }

    [Fact]
    public async Task AboveADepthTheLayersBelowAreNotAsked()
    {
        var baseNode = new MemoryNode(1 << 20);
        await baseNode.WriteAsync(0, new byte[65536]);
        var top = new OverlayStub(baseNode, allocatedFrom: 65536);

        var below = await ChainStatus.GetAboveAsync(top, 1, 0, 1 << 20);
        Assert.False(below.IsPresent);
        Assert.Equal(1, below.Depth);
        Assert.Equal(65536, below.Length);
        Assert.Equal(0, (await ChainStatus.GetAboveAsync(top, 1, 65536, 4096)).Depth);

        var extents = new List<ChainExtent>();
        await foreach (var e in ChainStatus.EnumerateAboveAsync(top, 1, 0, top.Size))
        {
            extents.Add(e);
        }

        Assert.Equal([(0L, 65536L, false), (65536L, (1L << 20) - 65536, true)], extents.Select(e => (e.Offset, e.Length, e.IsPresent)));
    }

    /// <summary>A top layer that allocates everything from <c>allocatedFrom</c> on and passes the rest down.</summary>
    private sealed class OverlayStub(IBlockNode backing, long allocatedFrom, long? size = null) : DelegatingNode(new MemoryNode(size ?? backing.Size))
    {
        public override ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        {
            if (offset >= allocatedFrom)
            {
                return ValueTask.FromResult(new BlockExtent(offset, length, BlockState.Allocated | BlockState.Data));
            }

            return ValueTask.FromResult(new BlockExtent(offset, Math.Min(length, allocatedFrom - offset), BlockState.Unallocated));
        }

        public override IBlockNode? Backing => backing;
    }
}
