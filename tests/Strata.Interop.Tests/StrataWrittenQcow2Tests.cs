using Strata.Formats.Qcow2;
using Strata.TestKit;

namespace Strata.Interop.Tests;

/// <summary>
/// qcow2 images created and written by Strata, judged by QEMU: <c>qemu-img check</c> finds no error and
/// no leak, and <c>qemu-img compare</c> finds them equal to the raw image the model predicts.
/// </summary>
public sealed class StrataWrittenQcow2Tests
{
    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(2 * 1024 * 1024)]
    public Task RandomWorkloadLeavesAnImageQemuChecksCleanAndComparesEqual(int clusterSize)
        => WorkloadJudgedByQemuAsync(new Qcow2CreateOptions
        {
            Size = clusterSize >= 2 * Images.MiB ? 12 * Images.MiB : 4 * Images.MiB,
            ClusterSize = clusterSize,
        });

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(32)]
    [InlineData(64)]
    public Task RandomWorkloadWithAnyRefcountWidthLeavesAnImageQemuChecksClean(int refcountBits)
        => WorkloadJudgedByQemuAsync(new Qcow2CreateOptions { Size = 4 * Images.MiB, ClusterSize = 4096, RefcountBits = refcountBits });

    [Fact]
    public Task RandomWorkloadOnACompat010ImageLeavesAnImageQemuChecksClean()
        => WorkloadJudgedByQemuAsync(new Qcow2CreateOptions { Size = 4 * Images.MiB, ClusterSize = 65536, Compat = "0.10" });

    [Fact]
    public Task RandomWorkloadWithLazyRefcountsLeavesAnImageQemuChecksClean()
        => WorkloadJudgedByQemuAsync(new Qcow2CreateOptions { Size = 4 * Images.MiB, ClusterSize = 4096, LazyRefcounts = true });

    [Fact]
    public async Task LazyRefcountsImageIsMarkedDirtyWhileOpenAndCleanAfterClose()
    {
        using var dir = new TempFolder();
        string path = dir.File("lazy.qcow2");
        await Images.CreateQcow2Async(path, new Qcow2CreateOptions { Size = 2 * Images.MiB, LazyRefcounts = true });
        await using (var node = await Images.OpenAsync(path))
        {
            await node.WriteAsync(65536, Workload.Pattern(new Random(5), 65536));
            await node.FlushAsync();
            Assert.True((Qcow2HeaderOffsets.ReadUInt64(path, Qcow2HeaderOffsets.IncompatibleFeatures) & 1) != 0, "the dirty bit is not set while the image is open for writing");
        }

        Assert.Equal(0UL, Qcow2HeaderOffsets.ReadUInt64(path, Qcow2HeaderOffsets.IncompatibleFeatures) & 1);
        Images.AssertQemuCheckClean(path, "lazy refcounts after close");
    }

    [Fact]
    public async Task UnknownAutoclearBitsAreClearedWhenStrataWrites()
    {
        using var dir = new TempFolder();
        string path = new Qcow2ImageBuilder { AutoclearFeatures = 1UL << 40 }.WriteTo(dir.File("autoclear.qcow2"));
        await using (var node = await Images.OpenAsync(path))
        {
            await node.WriteAsync(2 * Images.MiB, Workload.Pattern(new Random(6), 4096));
        }

        Assert.Equal(0UL, Qcow2HeaderOffsets.ReadUInt64(path, Qcow2HeaderOffsets.AutoclearFeatures) & (1UL << 40));
        Images.AssertQemuCheckClean(path, "after clearing autoclear bits");
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(65536)]
    public async Task ConcurrentRequestsSharingClustersLeaveAnImageQemuChecksClean(int clusterSize)
    {
        int seed = Workload.NewSeed();
        string context = $"cluster {clusterSize}, seed {seed}";
        using var dir = new TempFolder();
        string path = dir.File("concurrent.qcow2");
        const long Size = 4 * Images.MiB;
        const int Tasks = 16;
        const int Block = 4096;
        await Images.CreateQcow2Async(path, new Qcow2CreateOptions { Size = Size, ClusterSize = clusterSize });
        var model = new DiskModel(Size);
        await using (var node = await Images.OpenAsync(path))
        {
            // Task t owns the 4 KiB blocks b with b % Tasks == t: neighbours share every cluster, so
            // allocations of the same cluster race while the bytes each task touches stay disjoint.
            var workers = Enumerable.Range(0, Tasks).Select(t => Task.Run(async () =>
            {
                var random = new Random(seed + t);
                long blocks = Size / Block / Tasks;
                for (int i = 0; i < 40; i++)
                {
                    long offset = ((random.NextInt64(blocks) * Tasks) + t) * Block;
                    int pick = random.Next(10);
                    var op = pick < 7 ? new DiskOp(DiskOpKind.Write, offset, Block, Workload.Pattern(random, Block))
                        : pick < 9 ? new DiskOp(DiskOpKind.WriteZeroes, offset, Block)
                        : new DiskOp(DiskOpKind.Discard, offset, Block);
                    await op.ApplyAsync(node);
                    model.Apply(op);
                }
            })).ToArray();
            await Task.WhenAll(workers);
            await node.FlushAsync();
            await model.VerifyAndAdoptAsync(node, context);
        }

        Images.AssertQemuCheckClean(path, context);
        model.WriteRaw(dir.File("ref.raw"));
        Images.AssertQemuCompareEqual(path, dir.File("ref.raw"), context);
    }

    [Fact]
    public async Task ChainOfFourLayersWithAWorkloadOnEachReadsAsTheModelForStrataAndQemu()
    {
        int seed = Workload.NewSeed();
        using var dir = new TempFolder();
        const long Size = 4 * Images.MiB;

        // raw base → qcow2 64 KiB → qcow2 4 KiB → qcow2 512 B: every layer gets its own workload.
        string basePath = dir.File("base.raw");
        var model = new DiskModel(Size);
        await using (var node = Strata.Formats.Raw.RawFileNode.Create(basePath, Size))
        {
            await Images.RunWorkloadAsync(node, model, Workload.Generate(seed, Size, 60), $"base, seed {seed}");
            await model.VerifyAndAdoptAsync(node, $"base, seed {seed}");
        }

        var layers = new (string Name, int Cluster, string Backing, string BackingFormat)[]
        {
            ("l1.qcow2", 65536, "base.raw", "raw"),
            ("l2.qcow2", 4096, "l1.qcow2", "qcow2"),
            ("top.qcow2", 512, "l2.qcow2", "qcow2"),
        };
        for (int i = 0; i < layers.Length; i++)
        {
            var (name, cluster, backing, backingFormat) = layers[i];
            string context = $"layer {name}, seed {seed}";
            string path = dir.File(name);
            await Images.CreateQcow2Async(path, new Qcow2CreateOptions
            {
                Size = Size, ClusterSize = cluster, BackingFile = backing, BackingFormat = backingFormat,
            });
            model = model.Overlay();
            await using (var node = await Images.OpenAsync(path))
            {
                // Before any write the overlay reads exactly as its backing.
                await model.VerifyAndAdoptAsync(node, $"{context}, fresh overlay");
                await Images.RunWorkloadAsync(node, model, Workload.Generate(seed + i + 1, Size, 80), context);
                await model.VerifyAndAdoptAsync(node, context);
            }

            Images.AssertQemuCheckClean(path, context);
        }

        string top = dir.File("top.qcow2");
        await using (var node = await Images.OpenAsync(top, readOnly: true))
        {
            await model.VerifyAndAdoptAsync(node, $"top reopened, seed {seed}");
            Assert.NotNull(node.Backing?.Backing?.Backing);
        }

        model.WriteRaw(dir.File("ref.raw"));
        Images.AssertQemuCompareEqual(top, dir.File("ref.raw"), $"top of chain, seed {seed}");
        var chain = Images.QemuImg("info", "--backing-chain", "--output=json", top).AssertSuccess();
        Assert.Equal(4, System.Text.Json.JsonDocument.Parse(chain.Stdout).RootElement.GetArrayLength());
    }

    [Fact]
    public async Task StrataWritesIntoAQemuMadeImageAndQemuStillChecksItClean()
    {
        int seed = Workload.NewSeed();
        string context = $"seed {seed}";
        using var dir = new TempFolder();
        string path = dir.File("qemu.qcow2");
        Images.QemuImg("create", "-f", "qcow2", "-o", "cluster_size=4096", path, "4M").AssertSuccess();
        Images.QemuIo(path, "qcow2", "write -P 0x61 0 1M", "write -z 2M 64k", "write -P 0x62 3M 100k");
        var model = new DiskModel(4 * Images.MiB);
        model.Apply(new DiskOp(DiskOpKind.Write, 0, Images.MiB, Enumerable.Repeat((byte)0x61, Images.MiB).ToArray()));
        model.Apply(new DiskOp(DiskOpKind.Write, 3 * Images.MiB, 100 * 1024, Enumerable.Repeat((byte)0x62, 100 * 1024).ToArray()));
        await using (var node = await Images.OpenAsync(path))
        {
            await model.VerifyAndAdoptAsync(node, $"{context}, before");
            await Images.RunWorkloadAsync(node, model, Workload.Generate(seed, model.Size, 100), context);
            await model.VerifyAndAdoptAsync(node, context);
        }

        Images.AssertQemuCheckClean(path, context);
        model.WriteRaw(dir.File("ref.raw"));
        Images.AssertQemuCompareEqual(path, dir.File("ref.raw"), context);
    }

    [Fact]
    public async Task ResizedImageGrowsItsL1AndQemuSeesTheNewSizeAndData()
    {
        int seed = Workload.NewSeed();
        string context = $"seed {seed}";
        using var dir = new TempFolder();
        string path = dir.File("grow.qcow2");

        // 512 B clusters: one L2 table maps 32 KiB, one L1 cluster 2 MiB, so 4 MiB needs a bigger L1.
        await Images.CreateQcow2Async(path, new Qcow2CreateOptions { Size = 32 * 1024, ClusterSize = 512 });
        var model = new DiskModel(4 * Images.MiB);
        await using (var node = await Images.OpenAsync(path))
        {
            await node.ResizeAsync(4 * Images.MiB);
            Assert.Equal(4 * Images.MiB, node.Size);
            await Images.RunWorkloadAsync(node, model, Workload.Generate(seed, model.Size, 80), context);
            await model.VerifyAndAdoptAsync(node, context);
        }

        Assert.True(Qcow2HeaderOffsets.ReadUInt32(path, Qcow2HeaderOffsets.L1Size) >= 128, "the L1 table did not grow");
        Images.AssertQemuCheckClean(path, context);
        model.WriteRaw(dir.File("ref.raw"));
        Images.AssertQemuCompareEqual(path, dir.File("ref.raw"), context);
    }

    /// <summary>
    /// Creates the image with Strata, runs a seeded workload checked against the model request by
    /// request, then lets QEMU judge: check clean, compare equal to the model's raw image; and Strata
    /// reads the same after reopening.
    /// </summary>
    private static async Task WorkloadJudgedByQemuAsync(Qcow2CreateOptions options)
    {
        int seed = Workload.NewSeed();
        string context = $"cluster {options.ClusterSize}, refcount_bits {options.RefcountBits}, compat {options.Compat}, seed {seed}";
        using var dir = new TempFolder();
        string path = dir.File("disk.qcow2");
        await Images.CreateQcow2Async(path, options);
        var model = new DiskModel(options.Size);
        await using (var node = await Images.OpenAsync(path))
        {
            Assert.Equal("qcow2", node.DriverName);
            await Images.RunWorkloadAsync(node, model, Workload.Generate(seed, options.Size, 150), context);
            await model.VerifyAndAdoptAsync(node, context);
        }

        Images.AssertQemuCheckClean(path, context);
        model.WriteRaw(dir.File("ref.raw"));
        Images.AssertQemuCompareEqual(path, dir.File("ref.raw"), context);
        await using (var node = await Images.OpenAsync(path, readOnly: true))
        {
            await model.VerifyAndAdoptAsync(node, $"{context}, reopened");
        }
    }
}
