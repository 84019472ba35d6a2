using Strata.Block;
using Xunit.Abstractions;

namespace Strata.Rbd.Tests;

/// <summary>
/// What the rbd driver's request path costs in managed memory (docs/benchmarks/rbd.md, "Memory"):
/// requests that wait in librbd complete on its threads, so every object a request allocated would
/// be garbage the collector must find, and the daemon's heap would grow to the collector's budget
/// for young objects, which file-backed serving (completing inline) never reaches.
/// </summary>
[Collection(AllocationMeasuringCollection.Name)]
public sealed class RbdMemoryTests(ITestOutputHelper output)
{
    private const int Depth = 32;
    private const int Rounds = 64;

    [Fact]
    public async Task ReadsAndWritesInFlightInLibrbdAllocateNothingManaged()
    {
        using var image = new RbdImage("mem");
        await using var node = await image.CreateAsync(16 << 20);
        var buffers = new byte[Depth][];
        for (int i = 0; i < Depth; i++)
        {
            buffers[i] = new byte[4096];
        }

        // Warm: the completion pool holds Depth requests, librbd is past its first flush.
        var pending = new ValueTask[Depth];
        await RoundsAsync(node, buffers, pending, 4);

        long before = GC.GetTotalAllocatedBytes(precise: true);
        await RoundsAsync(node, buffers, pending, Rounds);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        long requests = 2L * Rounds * Depth;
        output.WriteLine($"{requests} requests: {allocated} bytes allocated, {allocated / requests} per request");
        Assert.True(allocated / requests < 8, $"{allocated / requests} bytes allocated per request");
    }

    /// <summary>Rounds of <see cref="Depth"/> 4 KiB writes, then as many reads, all in flight at once.</summary>
    private static async Task RoundsAsync(IBlockNode node, byte[][] buffers, ValueTask[] pending, int rounds)
    {
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < Depth; i++)
            {
                Keep(pending, i, node.WriteAsync(Offset(round, i), buffers[i]));
            }

            for (int i = 0; i < Depth; i++)
            {
                await pending[i];
            }

            for (int i = 0; i < Depth; i++)
            {
                Keep(pending, i, node.ReadAsync(Offset(round, i), buffers[i]));
            }

            for (int i = 0; i < Depth; i++)
            {
                await pending[i];
            }
        }
    }

    private static long Offset(int round, int index) => ((round * Depth) + index) % 4096 * 4096L;

    /// <summary>Holds a request to await once the whole round is in flight.</summary>
    private static void Keep(ValueTask[] pending, int index, ValueTask request) => pending[index] = request;
}
