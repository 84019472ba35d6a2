using Strata.Block;
using Strata.TestKit;

namespace Strata.Formats.Tests;

/// <summary>
/// cache=none: the file is really open with O_DIRECT (the kernel's own account in /proc), and any
/// request still works, however unaligned, while other requests touch the same sectors at once.
/// The temporary folder is on the test machine's disk file system, which does direct I/O.
/// </summary>
public sealed class RawFileNodeDirectTests
{
    private const int Rounds = 250;

    [Fact]
    public async Task CacheNoneOpensTheFileWithODirectAndTheDefaultDoesNot()
    {
        using var dir = new TempFolder();
        string path = dir.File("disk.raw");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", path, "1M").AssertSuccess();
        await using (var direct = await ImageOpener.OpenAsync(path, new ImageOpenOptions { Format = ImageOpener.Raw, Direct = true }))
        {
            OpenFileFlags.Expect(path, direct: true);
        }

        await using var cached = await ImageOpener.OpenAsync(path, new ImageOpenOptions { Format = ImageOpener.Raw });
        OpenFileFlags.Expect(path, direct: false);
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    public async Task UnalignedConcurrentRequestsOnARawImageMatchTheModelAndQemu(int seed)
    {
        Console.WriteLine($"seed {seed}");
        using var dir = new TempFolder();
        string path = dir.File("disk.raw");

        // An odd size, so that the last sector is partly beyond the end of the file.
        const long size = (2L << 20) + 1000;
        Processes.Run("truncate", "-s", size.ToString(), path).AssertSuccess();
        var model = new DiskModel(size);
        await using (var node = await ImageOpener.OpenAsync(path, new ImageOpenOptions { Format = ImageOpener.Raw, Direct = true }))
        {
            OpenFileFlags.Expect(path, direct: true);
            await RunAsync(node, model, seed);
            await model.VerifyAndAdoptAsync(node, $"seed {seed}");
            await node.FlushAsync();
        }

        Assert.Equal(size, new FileInfo(path).Length);
        string reference = dir.File("model.raw");
        model.WriteRaw(reference);
        Processes.Run("qemu-img", "compare", "-f", "raw", "-F", "raw", reference, path).AssertSuccess();
    }

    [Theory]
    [InlineData(21, "4k")]
    [InlineData(22, "64k")]
    public async Task UnalignedConcurrentRequestsOnAQcow2ImageMatchTheModelAndQemu(int seed, string clusterSize)
    {
        Console.WriteLine($"seed {seed}");
        using var dir = new TempFolder();
        string basePath = dir.File("base.raw");
        string path = dir.File("disk.qcow2");
        const long size = 2L << 20;
        var random = new Random(seed);
        byte[] baseData = Workload.Pattern(random, (int)size);
        await File.WriteAllBytesAsync(basePath, baseData);
        Processes.Run("qemu-img", "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize}", "-b", "base.raw", "-F", "raw", path).AssertSuccess();
        var model = new DiskModel(size, baseData);
        await using (var node = await ImageOpener.OpenAsync(path, new ImageOpenOptions { Format = ImageOpener.Qcow2Format, Direct = true }))
        {
            // The backing file is opened the same way as the image above it.
            OpenFileFlags.Expect(path, direct: true);
            OpenFileFlags.Expect(basePath, direct: true);
            await RunAsync(node, model, seed);
            await model.VerifyAndAdoptAsync(node, $"seed {seed}");
            await node.FlushAsync();
        }

        Processes.Run("qemu-img", "check", "-f", "qcow2", path).AssertSuccess();
        string reference = dir.File("model.raw");
        model.WriteRaw(reference);
        Processes.Run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", reference, path).AssertSuccess();
    }

    [Fact]
    public async Task CacheNoneOnAFileSystemWithoutODirectIsOneClearLine()
    {
        // procfs refuses O_DIRECT at open (EINVAL), as tmpfs did before Linux 6.6.
        var e = await Assert.ThrowsAsync<BlockException>(async () =>
            await ImageOpener.OpenAsync("/proc/version", new ImageOpenOptions { Format = ImageOpener.Raw, ReadOnly = true, Direct = true }));
        Assert.Equal("cache=none: the file system of '/proc/version' does not support O_DIRECT (use cache=writeback)", e.Message);
    }

    /// <summary>
    /// Rounds of requests issued all at once: each round cuts a random stretch of the disk at random
    /// byte offsets into neighbouring pieces, so that requests of one round share sectors but never
    /// bytes (what they must leave is then exact). Writes, zeroing and discards go to some pieces;
    /// the others are read and must hold what the model says, untouched by the read-modify-write of
    /// their neighbours.
    /// </summary>
    private static async Task RunAsync(IBlockNode node, DiskModel model, int seed)
    {
        var random = new Random(seed);
        for (int round = 0; round < Rounds; round++)
        {
            int pieces = random.Next(2, 9);
            long start = random.Next(4) == 0 ? model.Size - random.Next(1, 20_000) : random.NextInt64(model.Size);
            var ops = new List<DiskOp>();
            var reads = new List<(long Offset, byte[] Buffer)>();
            for (int i = 0; i < pieces && start < model.Size; i++)
            {
                int length = (int)Math.Min(model.Size - start, random.Next(4) == 0 ? random.Next(1, 200_000) : random.Next(1, 3000));
                int kind = random.Next(100);
                if (kind < 55)
                {
                    ops.Add(new DiskOp(DiskOpKind.Write, start, length, Workload.Pattern(random, length)));
                }
                else if (kind < 65)
                {
                    ops.Add(new DiskOp(random.Next(2) == 0 ? DiskOpKind.WriteZeroes : DiskOpKind.WriteZeroesUnmap, start, length));
                }
                else if (kind < 70)
                {
                    ops.Add(new DiskOp(DiskOpKind.Discard, start, length));
                }
                else
                {
                    reads.Add((start, new byte[length]));
                }

                start += length;
            }

            var running = ops.Select(op => Task.Run(async () => await op.ApplyAsync(node)))
                .Concat(reads.Select(r => Task.Run(async () => await node.ReadAsync(r.Offset, r.Buffer))));
            await Task.WhenAll(running);
            foreach (var (offset, buffer) in reads)
            {
                long bad = model.FirstMismatch(offset, buffer);
                Assert.True(bad < 0, $"byte {bad} read wrong beside concurrent requests (seed {seed}, round {round}: {string.Join(", ", ops)})");
                model.Adopt(offset, buffer);
            }

            foreach (var op in ops)
            {
                model.Apply(op);
            }

            if (random.Next(20) == 0)
            {
                await node.FlushAsync();
            }
        }
    }
}
