using Strata.Block;
using Strata.Formats.Qcow2;

namespace Strata.Formats.Tests;

public sealed class Qcow2NodeContractTests
{
    private static async Task<(MemoryNode File, Qcow2Node Node)> CreateAsync(Qcow2CreateOptions options, bool readOnly = false)
    {
        var file = new MemoryNode(0);
        await Qcow2Node.CreateAsync(file, options);
        return (file, await Qcow2Node.OpenAsync(file, readOnly));
    }

    [Fact]
    public async Task FuaWriteIsFlushedBeforeItCompletes()
    {
        var (file, node) = await CreateAsync(new Qcow2CreateOptions { Size = 1 << 20 });
        await using (node)
        {
            int before = file.FlushCount;
            await node.WriteAsync(0, new byte[100], WriteFlags.Fua);
            Assert.True(file.FlushCount > before);
        }
    }

    [Fact]
    public async Task CapabilitiesAndLimitsFollowTheImage()
    {
        var (_, v3) = await CreateAsync(new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 4096 });
        await using (v3)
        {
            Assert.True(v3.Capabilities.HasFlag(NodeCapabilities.FastZero));
            Assert.True(v3.Capabilities.HasFlag(NodeCapabilities.Discard));
            Assert.False(v3.Capabilities.HasFlag(NodeCapabilities.MultiConnection));
            Assert.Equal(new NodeLimits(1, 4096, NodeLimits.DefaultMaxTransfer), v3.Limits);
        }

        var (_, v2) = await CreateAsync(new Qcow2CreateOptions { Size = 1 << 20, Compat = "0.10" }, readOnly: true);
        await using (v2)
        {
            Assert.Equal(NodeCapabilities.ReadOnly, v2.Capabilities);
            await Assert.ThrowsAsync<BlockException>(async () => await v2.WriteAsync(0, new byte[1]));
        }
    }

    [Fact]
    public async Task FastZeroOfAVersion2ImageWithBackingIsRefused()
    {
        var (_, node) = await CreateAsync(new Qcow2CreateOptions { Size = 1 << 20, Compat = "0.10", BackingFile = "b.img" });
        await using (node)
        {
            node.BackingEdge.Attach(new MemoryNode(1 << 20), owns: true);
            var e = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteZeroesAsync(0, 65536, ZeroFlags.NoFallback));
            Assert.Equal(BlockError.NotSupported, e.Error);
        }
    }

    [Fact]
    public async Task DiscardWithABackingFileKeepsTheBackingHidden()
    {
        var (_, node) = await CreateAsync(new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 4096, BackingFile = "b.img" });
        await using (node)
        {
            var backing = new MemoryNode(1 << 20);
            await backing.WriteAsync(0, Qcow2TestImage.Pattern(1 << 20, 3));
            node.BackingEdge.Attach(backing, owns: true);
            await node.WriteAsync(0, Qcow2TestImage.Pattern(8192, 4));
            await node.DiscardAsync(0, 8192);
            var back = new byte[8192];
            await node.ReadAsync(0, back);
            Assert.All(back, b => Assert.Equal(0, b));
            Assert.Equal(BlockState.Allocated | BlockState.Zero, (await node.GetBlockStatusAsync(0, 1 << 20)).State);
        }
    }

    [Fact]
    public async Task BlockStatusMergesRunsAndReportsHostOffsets()
    {
        var (_, node) = await CreateAsync(new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 4096 });
        await using (node)
        {
            await node.WriteAsync(8192, new byte[3 * 4096]);
            var hole = await node.GetBlockStatusAsync(0, 1 << 20);
            Assert.Equal(new BlockExtent(0, 8192, BlockState.Unallocated), hole);
            var data = await node.GetBlockStatusAsync(8192, 1 << 20);
            Assert.Equal(BlockState.Allocated | BlockState.Data, data.State);
            Assert.Equal(3 * 4096, data.Length);
            Assert.True(data.HostOffset > 0);
            var part = await node.GetBlockStatusAsync(9000, 100);
            Assert.Equal(100, part.Length);
            Assert.Equal(data.HostOffset + 808, part.HostOffset);
        }
    }

    [Fact]
    public async Task BackingNameThatDoesNotFitIsRefusedAndTheHeaderIsKept()
    {
        var (_, node) = await CreateAsync(new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = 512, BackingFile = "a.img" });
        await using (node)
        {
            var e = await Assert.ThrowsAsync<BlockException>(async () => await node.ChangeBackingFileAsync(new string('x', 600), null));
            Assert.Contains("does not fit", e.Message, StringComparison.Ordinal);
            Assert.Equal("a.img", node.Info.BackingFile);
        }
    }
}
