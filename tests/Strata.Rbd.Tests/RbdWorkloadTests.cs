using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>Seeded random requests through the rbd node, checked against a model and against <c>rbd export</c>.</summary>
public sealed class RbdWorkloadTests
{
    private const long Size = 24 << 20;

    [Fact]
    public async Task ASeededWorkloadReadsBackAsTheModelSays()
    {
        int seed = Workload.NewSeed();
        using var image = new RbdImage("wl");
        var model = new DiskModel(Size);
        await using (var node = await image.CreateAsync(Size))
        {
            var ops = Workload.Generate(seed, Size, 300, alignment: 512, maxLength: 1 << 20);
            for (int i = 0; i < ops.Count; i++)
            {
                await ops[i].ApplyAsync(node);
                model.Apply(ops[i]);
            }

            await node.FlushAsync();
            await model.VerifyAndAdoptAsync(node, $"seed {seed}");
        }

        long mismatch = model.FirstMismatch(0, image.Export());
        Assert.True(mismatch < 0, $"seed {seed}: rbd export differs from the model at {mismatch}");
    }

    [Fact]
    public async Task ManyRequestsInFlightAtOnceAllComplete()
    {
        int seed = Workload.NewSeed();
        using var image = new RbdImage("par");
        var random = new Random(seed);
        const int Requests = 512;
        const int Length = 16 << 10;
        var expected = new byte[Requests * Length];
        random.NextBytes(expected);
        await using var node = await image.CreateAsync(expected.Length);

        // Disjoint ranges, all issued before any is awaited: completions from librbd's threads in any order.
        await Task.WhenAll(Enumerable.Range(0, Requests).Select(i =>
            node.WriteAsync((long)i * Length, expected.AsMemory(i * Length, Length)).AsTask()));
        var back = new byte[expected.Length];
        await Task.WhenAll(Enumerable.Range(0, Requests).Select(i =>
            node.ReadAsync((long)i * Length, back.AsMemory(i * Length, Length)).AsTask()));
        Assert.True(back.AsSpan().SequenceEqual(expected), $"seed {seed}: a parallel read or write went astray");
    }
}
