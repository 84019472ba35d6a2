using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>
/// Healthy images under seeded random workloads that grow the refcount table and the L1 table, free
/// clusters and reopen: the overlap check never refuses a write (no false positive), what the guest
/// wrote reads back, and qemu-img check stays clean.
/// </summary>
public sealed class Qcow2MetadataOverlapWorkloadTests
{
    private const long ModelSize = 8L << 20;

    // Growing a table on a broken allocator can run for a very long time: fail instead of hanging.
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(3);

    [Theory]
    // 512-byte clusters with 64-bit refcounts: a refcount block covers 64 clusters, so 8 MiB of data
    // grows the refcount table, and an L1 table of 128 clusters spans two refcount blocks.
    [InlineData(11, 512, 64, "1.1", 256L << 20)]
    [InlineData(12, 4096, 1, "1.1", 1L << 30)]
    [InlineData(13, 2048, 8, "1.1", 512L << 20)]
    [InlineData(14, 65536, 16, "1.1", 8L << 30)]
    [InlineData(15, 8192, 4, "1.1", 2L << 30)]
    [InlineData(16, 65536, 16, "0.10", 4L << 30)]
    public async Task RandomWorkloadsWithTableGrowthAndDiscardsNeverTripTheOverlapCheck(int seed, int clusterSize, int refcountBits, string compat, long grownSize)
    {
        string context = $"seed {seed}, cluster {clusterSize}, refcount_bits {refcountBits}, compat {compat}";
        await Task.Run(() => RunAsync(seed, clusterSize, refcountBits, compat, grownSize, context)).WaitAsync(Bound);
    }

    private static async Task RunAsync(int seed, int clusterSize, int refcountBits, string compat, long grownSize, string context)
    {
        using var dir = new TempFolder("overlap-load");
        string path = dir.File("healthy.qcow2");
        await Qcow2TestImage.CreateAsync(path, new Qcow2CreateOptions { Size = ModelSize, ClusterSize = clusterSize, RefcountBits = refcountBits, Compat = compat });
        var model = new DiskModel(ModelSize);
        var random = new Random(seed);
        for (int round = 0; round < 3; round++)
        {
            await using var node = await Qcow2TestImage.OpenAsync(path);
            var ops = Workload.Generate(random.Next(), ModelSize, 120, alignment: 512, maxLength: 256 * 1024);
            for (int i = 0; i < ops.Count; i++)
            {
                try
                {
                    await ops[i].ApplyAsync(node);
                }
                catch (BlockException e)
                {
                    throw new ModelMismatchException($"{context}, round {round}: request #{i} {ops[i]} was refused: {e.Message}", e);
                }

                model.Apply(ops[i]);
            }

            if (round == 1)
            {
                // The L1 table moves and grows; then a write near the new end needs an L2 table there.
                await node.ResizeAsync(grownSize);
                var tail = Workload.Pattern(random, 4096);
                await node.WriteAsync(grownSize - 8192, tail);
                var back = new byte[tail.Length];
                await node.ReadAsync(grownSize - 8192, back);
                Assert.True(tail.AsSpan().SequenceEqual(back), $"{context}: the write near the new end does not read back");
                await node.WriteZeroesAsync(grownSize - 8192, tail.Length);
            }

            await node.FlushAsync();
            await VerifyAsync(node, model, $"{context}, round {round}");
        }

        QemuImg.AssertClean(path, context);
        string raw = dir.File("model.raw");
        model.WriteRaw(raw);
        Processes.Ok("qemu-img", "compare", "-f", "qcow2", "-F", "raw", path, raw);
    }

    private static async Task VerifyAsync(IBlockNode node, DiskModel model, string context)
    {
        var buffer = new byte[1 << 20];
        for (long offset = 0; offset < ModelSize; offset += buffer.Length)
        {
            await node.ReadAsync(offset, buffer);
            long bad = model.FirstMismatch(offset, buffer);
            Assert.True(bad < 0, $"{context}: byte {bad} differs from the model");
            model.Adopt(offset, buffer);
        }
    }
}
