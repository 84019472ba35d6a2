using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Interop.Tests;

/// <summary>
/// Crash safety (qcow2.txt ordering rules: data and refcounts before the L2 entry, L2 table before the
/// L1 entry): a <see cref="FaultInjectingNode"/> between the qcow2 driver and its file refuses every
/// write after the k-th, for every k of a scenario (a seeded sample when there are many). A process
/// crash keeps every write that reached the file; a power loss (<see cref="PowerLossNode"/>) also drops
/// a random subset of the writes not yet flushed. After each, qemu-img check finds no corruption (leaks
/// are allowed) and every write completed before the last completed flush reads back.
/// </summary>
public sealed class CrashSafetyTests(ITestOutputHelper output)
{
    private const int MaxCrashPoints = 64;

    [Fact]
    public Task AllocatingWritesSurviveACrashAtEveryMetadataWrite() => AllocatingWritesAsync(powerLoss: false);

    [Fact]
    public Task AllocatingWritesSurviveAPowerLossAtEveryMetadataWrite() => AllocatingWritesAsync(powerLoss: true);

    [Fact]
    public Task WritesIntoAnOverlaySurviveACrashWithTheBackingCopiedUp() => OverlayWritesAsync(powerLoss: false);

    [Fact]
    public Task WritesIntoAnOverlaySurviveAPowerLossWithTheBackingCopiedUp() => OverlayWritesAsync(powerLoss: true);

    [Fact]
    public Task L1GrowthSurvivesACrashAtEveryMetadataWrite() => L1GrowthAsync(powerLoss: false);

    [Fact]
    public Task L1GrowthSurvivesAPowerLossAtEveryMetadataWrite() => L1GrowthAsync(powerLoss: true);

    [Fact]
    public Task RefcountTableGrowthSurvivesACrashAtEveryMetadataWrite() => RefcountTableGrowthAsync(powerLoss: false);

    [Fact]
    public Task RefcountTableGrowthSurvivesAPowerLossAtEveryMetadataWrite() => RefcountTableGrowthAsync(powerLoss: true);

    private Task AllocatingWritesAsync(bool powerLoss)
        => RunAsync(new Qcow2CreateOptions { Size = 4 * Images.MiB, ClusterSize = 65536 }, async (node, rec, random) =>
        {
            // Whole clusters, partial clusters (copy-on-write of zeroes), and writes sharing an L2 table.
            long[] offsets = [0, 65536 + 4096, 3 * Images.MiB, 200 * 1024, Images.MiB + 512, 2 * Images.MiB, 3 * Images.MiB + 65536, 512 * 1024];
            for (int i = 0; i < offsets.Length; i++)
            {
                await rec.WriteAsync(node, offsets[i], Workload.Pattern(random, i % 2 == 0 ? 65536 : 8192));
                if (i % 3 == 2)
                {
                    await rec.FlushAsync(node);
                }
            }

            await rec.FlushAsync(node);
        }, powerLoss);

    private Task OverlayWritesAsync(bool powerLoss)
        => RunAsync(new Qcow2CreateOptions { Size = 2 * Images.MiB, ClusterSize = 4096, BackingFile = "base.raw", BackingFormat = "raw" }, async (node, rec, random) =>
        {
            long[] offsets = [100, 8192 + 1024, Images.MiB + 2048, 5000 * 100];
            for (int i = 0; i < offsets.Length; i++)
            {
                await rec.WriteAsync(node, offsets[i] & ~511L, Workload.Pattern(random, 1024));
                if (i % 2 == 1)
                {
                    await rec.FlushAsync(node);
                }
            }
        }, powerLoss, withBacking: true);

    private Task L1GrowthAsync(bool powerLoss)
        => RunAsync(new Qcow2CreateOptions { Size = 32 * 1024, ClusterSize = 512 }, async (node, rec, random) =>
        {
            // 512 B clusters: one L2 table maps 32 KiB and one L1 cluster 2 MiB; 4 MiB needs a new, bigger L1.
            await rec.WriteAsync(node, 0, Workload.Pattern(random, 4096));
            await rec.FlushAsync(node);
            await node.ResizeAsync(4 * Images.MiB);
            await rec.FlushAsync(node);
            long[] offsets = [3 * Images.MiB, 2 * Images.MiB + 512, 64 * 1024, (4 * Images.MiB) - 4096];
            for (int i = 0; i < offsets.Length; i++)
            {
                await rec.WriteAsync(node, offsets[i], Workload.Pattern(random, 2048));
                if (i % 2 == 1)
                {
                    await rec.FlushAsync(node);
                }
            }
        }, powerLoss, check: path => Assert.True(Qcow2HeaderOffsets.ReadUInt32(path, Qcow2HeaderOffsets.L1Size) >= 128, "the scenario did not grow the L1 table"));

    private Task RefcountTableGrowthAsync(bool powerLoss)
    {
        uint initialClusters = 0;
        return RunAsync(new Qcow2CreateOptions { Size = 12 * Images.MiB, ClusterSize = 512 }, async (node, rec, random) =>
        {
            // 512 B clusters with 16-bit refcounts: one refcount block covers 128 KiB of file, a
            // one-cluster refcount table 8 MiB; 10 MiB of data outgrows it.
            for (int i = 0; i < 160; i++)
            {
                await rec.WriteAsync(node, i * 65536L, Workload.Pattern(random, 65536));
                if (i % 16 == 15)
                {
                    await rec.FlushAsync(node);
                }
            }
        }, powerLoss, prepare: path => initialClusters = Qcow2HeaderOffsets.ReadUInt32(path, Qcow2HeaderOffsets.RefcountTableClusters),
        check: path => Assert.True(
            Qcow2HeaderOffsets.ReadUInt32(path, Qcow2HeaderOffsets.RefcountTableClusters) > initialClusters,
            $"the scenario did not grow the refcount table (still {initialClusters} clusters)"), maxCrashPoints: 32);
    }

    /// <summary>
    /// Runs the scenario once without a crash to count its writes N (and run <paramref name="check"/>),
    /// then once per crash point k in 0..N on a fresh image.
    /// </summary>
    private async Task RunAsync(Qcow2CreateOptions create, Func<IBlockNode, CrashRecorder, Random, Task> scenario, bool powerLoss,
        bool withBacking = false, Action<string>? prepare = null, Action<string>? check = null, int maxCrashPoints = MaxCrashPoints)
    {
        int seed = Workload.NewSeed();
        using var dir = new TempFolder("crash");
        if (withBacking)
        {
            File.WriteAllBytes(dir.File("base.raw"), Workload.Pattern(new Random(seed), (int)create.Size));
        }

        string dry = dir.File("dry.qcow2");
        long writes = await RunOnceAsync(dry, create, scenario, seed, crashAfter: -1, prepare);
        check?.Invoke(dry);
        Images.AssertQemuCheckClean(dry, $"no crash, seed {seed}");

        var points = Enumerable.Range(0, (int)writes + 1).ToList();
        if (points.Count > maxCrashPoints)
        {
            var sample = new Random(seed);
            points = [0, (int)writes, .. points.OrderBy(_ => sample.Next()).Take(maxCrashPoints - 2)];
        }

        output.WriteLine($"seed {seed}: {writes} writes reach the file; crashing after each of {points.Distinct().Count()} of them");
        Assert.True(writes >= 4, $"the scenario wrote only {writes} times: it tests nothing");
        int lost = 0;
        foreach (int k in points.Distinct().Order())
        {
            string context = $"{(powerLoss ? "power loss" : "crash")} after write {k} of {writes}, seed {seed}";
            string path = dir.File($"crash-{k}.qcow2");
            var recorder = await RunCrashedAsync(path, create, scenario, seed, k, context, powerLoss);
            lost += recorder.LostWrites;
            var result = Images.QemuImg("check", "--output=json", "-f", "qcow2", path);
            Assert.True(result.ExitCode is 0 or 3, $"{context}: qemu-img check finds corruption\n{result}");

            await using (var node = await Images.OpenAsync(path, readOnly: true))
            {
                Assert.True(node.Size >= recorder.DurableSize, $"{context}: size {node.Size} after the crash, {recorder.DurableSize} was flushed");
                for (int i = 0; i < recorder.Durable; i++)
                {
                    var (offset, data) = recorder.Completed[i];
                    var back = new byte[data.Length];
                    await node.ReadAsync(offset, back);
                    Images.AssertSameBytes(data, back, $"{context}: flushed write #{i} at {offset}");
                }
            }

            File.Delete(path);
        }

        output.WriteLine(powerLoss ? $"power losses dropped {lost} unflushed file writes in total" : "process crashes: every write that reached the file stays");
    }

    private static async Task<long> RunOnceAsync(string path, Qcow2CreateOptions create, Func<IBlockNode, CrashRecorder, Random, Task> scenario,
        int seed, long crashAfter, Action<string>? prepare)
    {
        await Images.CreateQcow2Async(path, create);
        prepare?.Invoke(path);
        await using var file = RawFileNode.Open(path);
        var fault = new FaultInjectingNode(file, crashAfter, ownsInner: false);
        var node = await Qcow2Node.OpenAsync(fault, readOnly: false);
        if (create.BackingFile is not null)
        {
            node.BackingEdge.Attach(RawFileNode.Open(Path.Combine(Path.GetDirectoryName(path)!, create.BackingFile), readOnly: true), owns: true);
        }

        await scenario(node, new CrashRecorder(), new Random(seed));
        await node.DisposeAsync();
        return fault.WritesSeen;
    }

    private static async Task<CrashRecorder> RunCrashedAsync(string path, Qcow2CreateOptions create, Func<IBlockNode, CrashRecorder, Random, Task> scenario,
        int seed, long crashAfter, string context, bool powerLoss)
    {
        await Images.CreateQcow2Async(path, create);
        var recorder = new CrashRecorder();
        await using var file = RawFileNode.Open(path);
        var cache = powerLoss ? new PowerLossNode(file) : null;
        var fault = new FaultInjectingNode(cache ?? (IBlockNode)file, crashAfter, ownsInner: false);
        Qcow2Node? node = null;
        try
        {
            node = await Qcow2Node.OpenAsync(fault, readOnly: false);
            if (create.BackingFile is not null)
            {
                node.BackingEdge.Attach(RawFileNode.Open(Path.Combine(Path.GetDirectoryName(path)!, create.BackingFile), readOnly: true), owns: true);
            }

            await scenario(node, recorder, new Random(seed));
            await node.DisposeAsync();
            node = null;
        }
        catch (Exception e) when (fault.Crashed)
        {
            // The injected crash, possibly wrapped or reported as the driver's own error: the process "died".
            Assert.True(e is BlockException, $"{context}: the crash surfaced as {e}");
        }

        if (node is not null)
        {
            // Let the node release its resources; every write it tries now is refused like after a crash.
            try
            {
                await node.DisposeAsync();
            }
            catch (BlockException)
            {
            }
        }

        if (cache is not null)
        {
            // The power fails: part of what was written since the last completed flush never reached the disk.
            recorder.LostWrites = await cache.LosePowerAsync(new Random(seed ^ (int)crashAfter));
        }

        return recorder;
    }
}
