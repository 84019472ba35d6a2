using Strata.TestKit;

namespace Strata.Block.Tests;

/// <summary>512-byte requests over a node that takes only 4 KiB blocks: the gate pads them, and loses nothing.</summary>
public sealed class RequestGatePaddingTests
{
    private const int Sector = 512;
    private const int Block = 4096;
    private const int Size = 256 * 1024;

    [Fact]
    public async Task AnUnalignedWriteReadsBackAndTheNodeSeesOnlyWholeBlocks()
    {
        var memory = new MemoryNode(Size);
        var gate = new RequestGate(new AlignedNode(memory));
        await gate.WriteAsync(0, Enumerable.Repeat((byte)0xee, 3 * Block).ToArray());
        byte[] data = Workload.Pattern(new Random(1), 5000);
        await gate.WriteAsync(Block - 700, data);
        var back = new byte[5000];
        await gate.ReadAsync(Block - 700, back);
        Assert.Equal(data, back);
        var whole = memory.ToArray();
        Assert.All(whole[..(Block - 700)], b => Assert.Equal(0xee, b));
        Assert.All(whole[(Block - 700 + 5000)..(3 * Block)], b => Assert.Equal(0xee, b));
    }

    [Fact]
    public async Task UnalignedZeroesClearOnlyTheirBytesAndAnUnalignedDiscardLeavesItsPartialBlocksAlone()
    {
        var memory = new MemoryNode(Size);
        var gate = new RequestGate(new AlignedNode(memory));
        await gate.WriteAsync(0, Enumerable.Repeat((byte)0x5a, 5 * Block).ToArray());
        await gate.WriteZeroesAsync(Sector, Block + Sector, ZeroFlags.MayUnmap);
        await gate.DiscardAsync((3 * Block) - (3 * Sector), 2 * Block);
        var whole = memory.ToArray();
        Assert.All(whole[..Sector], b => Assert.Equal(0x5a, b));
        Assert.All(whole[Sector..(Block + (2 * Sector))], b => Assert.Equal(0, b));
        Assert.All(whole[(Block + (2 * Sector))..(3 * Block)], b => Assert.Equal(0x5a, b));
        Assert.All(whole[(4 * Block)..(5 * Block)], b => Assert.Equal(0x5a, b));
    }

    [Fact]
    public async Task AnUnalignedFastZeroIsNotSupportedAndChangesNothing()
    {
        var memory = new MemoryNode(Size);
        var gate = new RequestGate(new AlignedNode(memory));
        await gate.WriteAsync(0, Enumerable.Repeat((byte)1, Block).ToArray());
        var e = await Assert.ThrowsAsync<BlockException>(async () => await gate.WriteZeroesAsync(Sector, Sector, ZeroFlags.NoFallback));
        Assert.Equal(BlockError.NotSupported, e.Error);
        Assert.All(memory.ToArray()[..Block], b => Assert.Equal(1, b));
    }

    [Fact]
    public async Task BlockStatusOfAnUnalignedRangeStartsWhereItWasAsked()
    {
        var gate = new RequestGate(new AlignedNode(new MemoryNode(Size)));
        await gate.WriteAsync(Block, new byte[] { 1 });
        var first = await gate.GetBlockStatusAsync(Sector, 3 * Block);
        Assert.Equal((long)Sector, first.Offset);
        Assert.Equal(Block - Sector, first.Length);
        Assert.False(first.IsData);
        var second = await gate.GetBlockStatusAsync(Block + Sector, Sector);
        Assert.Equal((Block + Sector, (long)Sector), (second.Offset, second.Length));
        Assert.True(second.IsData);
    }

    [Fact]
    public async Task ConcurrentPaddedWritesIntoOneBlockNeverLoseEachOthersBytes()
    {
        var memory = new MemoryNode(Size);
        var gate = new RequestGate(new AlignedNode(memory));
        for (int round = 1; round <= 50; round++)
        {
            byte value = (byte)round;
            await Task.WhenAll(Enumerable.Range(0, 2 * Block / Sector).Select(s => Task.Run(async () =>
                await gate.WriteAsync(Block + (s * Sector), Enumerable.Repeat((byte)(value + s), Sector).ToArray()))));
            var whole = memory.ToArray();
            for (int s = 0; s < 2 * Block / Sector; s++)
            {
                int at = Block + (s * Sector);
                Assert.True(whole.AsSpan(at, Sector).IndexOfAnyExcept((byte)(value + s)) < 0, $"round {round}: sector {s} lost its write");
            }
        }
    }

    [Fact]
    public async Task RandomConcurrentUnalignedRequestsMatchTheModel()
    {
        int seed = Workload.NewSeed();
        var random = new Random(seed);
        var node = new AlignedNode(new MemoryNode(Size));
        var gate = new RequestGate(node);
        var model = new DiskModel(Size);

        // Requests in a round touch disjoint bytes but often share blocks, so they race inside a block;
        // the bytes each writes are then certain, whatever order they finish in.
        for (int round = 0; round < 300; round++)
        {
            var requests = NextRound(random, round % 2 == 0 ? 32 * 1024 : Size);
            try
            {
                var reads = await Task.WhenAll(requests.Select(r => Task.Run(async () =>
                {
                    if (r.Change is { } change)
                    {
                        await ApplyAsync(gate, change);
                        return null;
                    }

                    var back = new byte[r.Length];
                    await gate.ReadAsync(r.Offset, back);
                    return back;
                })));
                for (int i = 0; i < requests.Count; i++)
                {
                    if (reads[i] is { } back)
                    {
                        long bad = model.FirstMismatch(requests[i].Offset, back);
                        Assert.True(bad < 0, $"seed {seed}, round {round}: read [{requests[i].Offset}, +{back.Length}) differs from the model at byte {bad}");
                    }
                }
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                Assert.Fail($"seed {seed}, round {round}: {e}");
            }

            foreach (var r in requests)
            {
                if (r.Change is { } change)
                {
                    model.Apply(change);
                }
            }
        }

        await model.VerifyAndAdoptAsync(node, $"seed {seed}");
        Assert.True(node.Requests > 0);
    }

    /// <summary>Up to eight requests on disjoint sector ranges within the first <paramref name="span"/> bytes; a request with no change is a read.</summary>
    private static List<(long Offset, long Length, DiskOp? Change)> NextRound(Random random, int span)
    {
        var requests = new List<(long Offset, long Length, DiskOp? Change)>();
        int count = random.Next(1, 9);
        for (int tries = 0; requests.Count < count && tries < 100; tries++)
        {
            int sectors = random.Next(4) == 0 ? random.Next(1, 65) : random.Next(1, 9);
            long offset = (long)random.Next(0, (span / Sector) - sectors + 1) * Sector;
            long length = (long)sectors * Sector;
            if (requests.Any(r => r.Offset < offset + length && offset < r.Offset + r.Length))
            {
                continue;
            }

            int pick = random.Next(100);
            requests.Add((offset, length, pick switch
            {
                < 30 => null,
                < 70 => new DiskOp(DiskOpKind.Write, offset, length, Workload.Pattern(random, (int)length)),
                < 80 => new DiskOp(DiskOpKind.WriteZeroes, offset, length),
                < 88 => new DiskOp(DiskOpKind.WriteZeroesUnmap, offset, length),
                _ => new DiskOp(DiskOpKind.Discard, offset, length),
            }));
        }

        return requests;
    }

    private static ValueTask ApplyAsync(RequestGate gate, DiskOp op) => op.Kind switch
    {
        DiskOpKind.Write => gate.WriteAsync(op.Offset, op.Data, op.Offset % 3 == 0 ? WriteFlags.Fua : WriteFlags.None),
        DiskOpKind.WriteZeroes => gate.WriteZeroesAsync(op.Offset, op.Length, ZeroFlags.Fua),
        DiskOpKind.WriteZeroesUnmap => gate.WriteZeroesAsync(op.Offset, op.Length, ZeroFlags.MayUnmap),
        DiskOpKind.Discard => gate.DiscardAsync(op.Offset, op.Length),
        _ => throw new ArgumentOutOfRangeException(nameof(op), op.Kind, "not a request of this test"),
    };
}
