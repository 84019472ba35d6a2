using Strata.Block;
using Strata.Formats.Raw;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>
/// Block status of a raw file, which remembers the last run of data it found: it must stay sound
/// (never "zero" where the file holds data) and see the holes its own discards and zeroing make.
/// </summary>
public sealed class RawFileNodeStatusTests
{
    private const int Page = 4096;
    private const int Pages = 256;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task StatusMatchesTheFileThroughWritesDiscardsAndZeroing(int seed)
    {
        Console.WriteLine($"seed {seed}");
        using var folder = new TempFolder();
        string path = folder.File("disk.img");
        await using var node = RawFileNode.Create(path, (long)Pages * Page);
        var random = new Random(seed);
        var model = new byte[Pages * Page];

        // Fully written first, so that the first question finds one run of data covering the file.
        random.NextBytes(model);
        await node.WriteAsync(0, model);
        var whole = await node.GetBlockStatusAsync(0, model.Length);
        Assert.Equal((BlockState.Allocated | BlockState.Data, (long)model.Length), (whole.State, whole.Length));

        for (int step = 0; step < 400; step++)
        {
            int first = random.Next(Pages);
            int count = random.Next(1, Math.Min(16, Pages - first) + 1);
            long offset = (long)first * Page;
            long length = (long)count * Page;
            switch (random.Next(4))
            {
                case 0:
                    var data = new byte[length];
                    random.NextBytes(data);
                    await node.WriteAsync(offset, data);
                    data.CopyTo(model, offset);
                    break;
                case 1:
                    await node.DiscardAsync(offset, length);
                    Array.Clear(model, (int)offset, (int)length);
                    await AssertHoleAsync(node, offset, seed, step);
                    break;
                case 2:
                    await node.WriteZeroesAsync(offset, length, ZeroFlags.MayUnmap);
                    Array.Clear(model, (int)offset, (int)length);
                    await AssertHoleAsync(node, offset, seed, step);
                    break;
                default:
                    await AssertSoundAsync(node, model, offset, seed, step);
                    break;
            }
        }

        for (long at = 0; at < model.Length;)
        {
            at = await AssertSoundAsync(node, model, at, seed, -1);
        }
    }

    /// <summary>A range just punched reads as a hole at its start, even where a run of data was remembered.</summary>
    private static async Task AssertHoleAsync(RawFileNode node, long offset, int seed, int step)
    {
        var e = await node.GetBlockStatusAsync(offset, node.Size - offset);
        Assert.True(e.State.HasFlag(BlockState.Zero), $"seed {seed}, step {step}: a punched range at {offset} reported as {e.State}");
    }

    /// <summary>What is reported as zero holds zeroes; returns the end of the extent.</summary>
    private static async Task<long> AssertSoundAsync(RawFileNode node, byte[] model, long offset, int seed, int step)
    {
        var e = await node.GetBlockStatusAsync(offset, model.Length - offset);
        Assert.True(e.Length > 0 && e.Offset == offset && e.End <= model.Length, $"seed {seed}, step {step}: extent {e.Offset}+{e.Length}");
        if (e.State.HasFlag(BlockState.Zero))
        {
            Assert.True(model.AsSpan((int)e.Offset, (int)e.Length).IndexOfAnyExcept((byte)0) < 0,
                $"seed {seed}, step {step}: {e.Offset}+{e.Length} reported zero but holds data");
        }

        var read = new byte[e.Length];
        await node.ReadAsync(e.Offset, read);
        Assert.True(read.AsSpan().SequenceEqual(model.AsSpan((int)e.Offset, (int)e.Length)), $"seed {seed}, step {step}: content differs at {e.Offset}");
        return e.End;
    }
}
