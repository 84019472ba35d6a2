using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Formats.Tests;

public sealed class Qcow2WorkloadTests
{
    [Theory]
    [InlineData(1, 65536, "1.1", 16, false)]
    [InlineData(2, 4096, "1.1", 1, false)]
    [InlineData(3, 512, "1.1", 64, true)]
    [InlineData(4, 65536, "0.10", 16, false)]
    [InlineData(5, 8192, "1.1", 4, true)]
    [InlineData(6, 65536, "0.10", 16, true)]
    public async Task RandomWritesZeroesAndDiscardsMatchAModelAndQemu(int seed, int clusterSize, string compat, int refcountBits, bool withBacking)
    {
        using var dir = new TempFolder();
        string path = dir.File("a.qcow2");
        string basePath = dir.File("base.raw");
        long size = 4L << 20;
        var model = new byte[size];
        var random = new Random(seed);
        if (withBacking)
        {
            var baseData = Qcow2TestImage.Pattern((int)(size * 3 / 4), seed + 1000);
            File.WriteAllBytes(basePath, baseData);
            baseData.CopyTo(model, 0);
        }

        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions
        {
            Size = size, ClusterSize = clusterSize, Compat = compat, RefcountBits = refcountBits,
            BackingFile = withBacking ? "base.raw" : null, BackingFormat = withBacking ? "raw" : null,
        });

        for (int round = 0; round < 3; round++)
        {
            var backing = withBacking ? Raw.RawFileNode.Open(basePath, readOnly: true) : null;
            await using var node = await Qcow2TestImage.OpenAsync(path, backing: backing);
            for (int i = 0; i < 60; i++)
            {
                long offset = random.NextInt64(size);
                int length = (int)Math.Min(size - offset, random.Next(1, 3 * clusterSize + 5000));
                int op = random.Next(10);
                if (op < 6)
                {
                    var data = Qcow2TestImage.Pattern(length, random.Next());
                    await node.WriteAsync(offset, data);
                    data.CopyTo(model, offset);
                }
                else if (op < 8)
                {
                    await node.WriteZeroesAsync(offset, length, random.Next(2) == 0 ? ZeroFlags.MayUnmap : ZeroFlags.None);
                    Array.Clear(model, (int)offset, length);
                }
                else if (op < 9)
                {
                    // Discard leaves the content unspecified: read it back into the model.
                    await node.DiscardAsync(offset, length);
                    var now = new byte[length];
                    await node.ReadAsync(offset, now);
                    now.CopyTo(model, offset);
                }
                else
                {
                    await node.FlushAsync();
                }
            }

            var back = new byte[size];
            await node.ReadAsync(0, back);
            Assert.True(model.AsSpan().SequenceEqual(back), $"content differs from the model (seed {seed}, round {round})");
        }

        QemuImg.AssertClean(path, $"(seed {seed})");
        string raw = dir.File("model.raw");
        File.WriteAllBytes(raw, model);
        Processes.Ok("qemu-img", "compare", "-F", "raw", path, raw);
    }

    [Fact]
    public async Task ConcurrentWritesToTheSameAndDifferentClustersAllLand()
    {
        const int seed = 42;
        using var dir = new TempFolder();
        string path = dir.File("a.qcow2");
        int clusterSize = 4096;
        long size = 2L << 20;
        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions { Size = size, ClusterSize = clusterSize });
        var model = new byte[size];
        await using (var node = await Qcow2TestImage.OpenAsync(path))
        {
            // Non-overlapping 512-byte pieces, many in the same cluster, written concurrently.
            var pieces = Enumerable.Range(0, (int)(size / 512)).OrderBy(_ => new Random(seed).Next()).ToArray();
            var random = new Random(seed);
            pieces = [.. pieces.OrderBy(_ => random.Next())];
            var tasks = new List<Task>();
            foreach (int piece in pieces.Take(2000))
            {
                var data = Qcow2TestImage.Pattern(512, piece);
                data.CopyTo(model, piece * 512L);
                tasks.Add(Task.Run(async () => await node.WriteAsync(piece * 512L, data)));
            }

            await Task.WhenAll(tasks);
            var back = new byte[size];
            await node.ReadAsync(0, back);
            Assert.True(model.AsSpan().SequenceEqual(back), $"concurrent writes lost data (seed {seed})");
        }

        QemuImg.AssertClean(path);
    }

    [Fact]
    public async Task AWriteIntoAClusterBeingAllocatedWaitsForThatAllocationAndBothLand()
    {
        const int clusterSize = 4096;
        var file = new HoldingNode(new MemoryNode(0), clusterSize);
        await Qcow2Node.CreateAsync(file, new Qcow2CreateOptions { Size = 1 << 20, ClusterSize = clusterSize });
        await using var node = await Qcow2Node.OpenAsync(file, readOnly: false);
        file.Arm();
        var first = Qcow2TestImage.Pattern(512, 1);
        var second = Qcow2TestImage.Pattern(512, 2);

        // The first write allocates cluster 0 and is held while its data goes to the file.
        var firstWrite = node.WriteAsync(0, first).AsTask();
        await file.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var secondWrite = node.WriteAsync(1024, second).AsTask();
        await Task.Delay(50);
        Assert.False(secondWrite.IsCompleted, "a write into a cluster being allocated did not wait for the allocation");

        file.Release.SetResult();
        await firstWrite.WaitAsync(TimeSpan.FromSeconds(10));
        await secondWrite.WaitAsync(TimeSpan.FromSeconds(10));
        var back = new byte[clusterSize];
        await node.ReadAsync(0, back);
        var expected = new byte[clusterSize];
        first.CopyTo(expected, 0);
        second.CopyTo(expected, 1024);
        Assert.True(expected.AsSpan().SequenceEqual(back), "one of the two writes into the cluster was lost");
    }

    /// <summary>Once armed, holds the first write of exactly <paramref name="length"/> bytes (a cluster's data) until released.</summary>
    private sealed class HoldingNode(IBlockNode inner, int length) : DelegatingNode(inner)
    {
        private int _holding = 1;

        public TaskCompletionSource Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Arm() => Volatile.Write(ref _holding, 0);

        public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        {
            if (data.Length == length && Interlocked.Exchange(ref _holding, 1) == 0)
            {
                Held.SetResult();
                await Release.Task;
            }

            await base.WriteAsync(offset, data, flags, cancellationToken);
        }
    }

    [Theory]
    [InlineData(7, false)]
    [InlineData(8, true)]
    public async Task ConcurrentMixedRequestsOnDisjointClustersMatchAModel(int seed, bool withBacking)
    {
        using var dir = new TempFolder();
        string path = dir.File("a.qcow2");
        string basePath = dir.File("base.raw");
        const int clusterSize = 4096;
        const int tasks = 4;
        long size = 4L << 20;
        var model = new byte[size];
        if (withBacking)
        {
            var baseData = Qcow2TestImage.Pattern((int)size, seed);
            File.WriteAllBytes(basePath, baseData);
            baseData.CopyTo(model, 0);
        }

        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions
        {
            Size = size, ClusterSize = clusterSize, BackingFile = withBacking ? "base.raw" : null, BackingFormat = withBacking ? "raw" : null,
        });
        await using (var node = await Qcow2TestImage.OpenAsync(path, backing: withBacking ? Raw.RawFileNode.Open(basePath, readOnly: true) : null))
        {
            // Task t owns the groups of 3 clusters whose index modulo the task count is t.
            async Task Run(int t)
            {
                var random = new Random(seed * 100 + t);
                long groups = size / (3 * clusterSize);
                for (int i = 0; i < 300; i++)
                {
                    long group = (random.NextInt64(groups / tasks) * tasks) + t;
                    long offset = (group * 3 * clusterSize) + random.Next(3 * clusterSize);
                    int length = (int)Math.Min((group + 1) * 3 * clusterSize - offset, random.Next(1, 3 * clusterSize));
                    length = (int)Math.Min(length, size - offset);
                    switch (random.Next(8))
                    {
                        case < 4:
                            var data = Qcow2TestImage.Pattern(length, random.Next());
                            await node.WriteAsync(offset, data);
                            data.CopyTo(model, offset);
                            break;
                        case < 6:
                            await node.WriteZeroesAsync(offset, length, ZeroFlags.MayUnmap);
                            Array.Clear(model, (int)offset, length);
                            break;
                        case 6:
                            await node.DiscardAsync(offset, length);
                            var now = new byte[length];
                            await node.ReadAsync(offset, now);
                            now.CopyTo(model, offset);
                            break;
                        default:
                            var back = new byte[length];
                            await node.ReadAsync(offset, back);
                            Assert.True(model.AsSpan((int)offset, length).SequenceEqual(back), $"read differs from the model (seed {seed}, task {t}, step {i})");
                            break;
                    }

                    if (random.Next(50) == 0)
                    {
                        await node.FlushAsync();
                    }
                }
            }

            await Task.WhenAll(Enumerable.Range(0, tasks).Select(t => Task.Run(() => Run(t))));
            var all = new byte[size];
            await node.ReadAsync(0, all);
            Assert.True(model.AsSpan().SequenceEqual(all), $"content differs from the model (seed {seed})");
        }

        QemuImg.AssertClean(path, $"(seed {seed})");
        string raw = dir.File("model.raw");
        File.WriteAllBytes(raw, model);
        Processes.Ok("qemu-img", "compare", "-F", "raw", path, raw);
    }
}
