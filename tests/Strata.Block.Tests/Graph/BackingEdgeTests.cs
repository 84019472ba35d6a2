using Strata.Block.Graph;

namespace Strata.Block.Tests.Graph;

public sealed class BackingEdgeTests
{
    [Fact]
    public async Task AnOwningEdgeClosesItsNodeWithItsLayerAndAPointingOneDoesNot()
    {
        var owned = new MemoryImageNode(new MemoryImage(4096), "owned.img", readOnly: true);
        var pointed = new MemoryImageNode(new MemoryImage(4096), "pointed.img", readOnly: true);
        var a = new MemoryImageNode(new MemoryImage(4096), "a.img", readOnly: true);
        var b = new MemoryImageNode(new MemoryImage(4096), "b.img", readOnly: true);
        a.BackingEdge.Attach(owned, owns: true);
        b.BackingEdge.Attach(pointed);

        await a.DisposeAsync();
        await b.DisposeAsync();

        Assert.True(owned.Closed);
        Assert.False(pointed.Closed);
    }

    [Fact]
    public async Task AnOwningEdgeRefusesToBeRepointed()
    {
        var layer = new MemoryImageNode(new MemoryImage(4096), "a.img", readOnly: true);
        var gate = new RequestGate(layer);
        layer.BackingEdge.Attach(new MemoryNode(4096), owns: true);
        using var drain = await gate.DrainAsync();

        Assert.Throws<InvalidOperationException>(() => layer.BackingEdge.Repoint(new MemoryNode(4096), drain));
    }

    [Fact]
    public async Task AdoptingAChainTakesEveryLayerOverAndClosesThemTopFirst()
    {
        var log = new List<string>();
        var top = new MemoryImageNode(new MemoryImage(4096), "top.img", readOnly: false, log);
        var middle = new MemoryImageNode(new MemoryImage(4096), "middle.img", readOnly: true, log);
        var bottom = new MemoryImageNode(new MemoryImage(4096), "base.img", readOnly: true, log);
        top.BackingEdge.Attach(middle, owns: true);
        middle.BackingEdge.Attach(bottom, owns: true);

        var chain = LayerChain.Adopt(top);

        Assert.Equal<IBlockNode>([top, middle, bottom], chain.Layers);
        Assert.False(top.BackingEdge.OwnsNode);
        Assert.Same(middle, top.Backing);
        await chain.CloseAsync([top]);
        Assert.Equal(["top.img"], log);
        Assert.False(middle.Closed);
        await chain.DisposeAsync();
        Assert.Equal(["top.img", "middle.img", "base.img"], log);
    }

    [Fact]
    public async Task ARepointedEdgeReadsFromItsNewNodeAtOnce()
    {
        var layer = new MemoryImageNode(new MemoryImage(4096), "top.img", readOnly: true);
        var first = new MemoryNode(4096);
        var second = new MemoryNode(4096);
        await second.WriteAsync(0, Enumerable.Repeat((byte)9, 4096).ToArray());
        layer.BackingEdge.Attach(first);
        var gate = new RequestGate(layer);

        using (var drain = await gate.DrainAsync())
        {
            layer.BackingEdge.Repoint(second, drain);
        }

        var back = new byte[4096];
        await gate.ReadAsync(0, back);
        Assert.All(back, b => Assert.Equal(9, b));
    }
}
