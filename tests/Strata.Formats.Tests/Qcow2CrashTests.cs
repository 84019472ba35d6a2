using Strata.Block;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;
using Strata.TestKit;

namespace Strata.Formats.Tests;

public sealed class Qcow2CrashTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CrashAtEveryWriteLeavesNoCorruptionAndKeepsFlushedData(bool lazyRefcounts)
    {
        using var dir = new TempFolder();
        string path = dir.File("a.qcow2");
        long initialSize = 256 * 1024;
        long finalSize = 3L << 20;
        var options = new Qcow2CreateOptions { Size = initialSize, ClusterSize = 512, RefcountBits = 64, LazyRefcounts = lazyRefcounts };

        // A dry run counts the writes the workload issues.
        await Qcow2TestImage.CreateAsync(path, options);
        long total;
        var counting = new FaultInjectingNode(RawFileNode.Open(path));
        await using (var node = await Qcow2Node.OpenAsync(counting, readOnly: false))
        {
            await new CrashWorkload(finalSize).RunAsync(node);
            total = counting.WritesSeen;
        }

        QemuImg.AssertClean(path);
        for (long k = 0; k <= total; k++)
        {
            await Qcow2TestImage.CreateAsync(path, options);
            var workload = new CrashWorkload(finalSize);
            var faulty = new FaultInjectingNode(RawFileNode.Open(path), writesBeforeCrash: -1);
            Qcow2Node? node = null;
            try
            {
                node = await Qcow2Node.OpenAsync(faulty, readOnly: false);
                faulty.CrashAfter(k);
                await workload.RunAsync(node);
            }
            catch (BlockException e) when (e.Message.StartsWith("injected crash", StringComparison.Ordinal))
            {
            }

            if (node is not null)
            {
                try
                {
                    await node.DisposeAsync();
                }
                catch (BlockException)
                {
                    // The crashed file refuses the final flush; its handle is closed anyway.
                }
            }

            var check = QemuImg.Check(path);
            Assert.True(check.TryGetProperty("corruptions", out var c) ? c.GetInt32() == 0 : true, $"crash after {k} writes corrupted the image: {check}");
            Assert.False(check.TryGetProperty("check-errors", out var ce) && ce.GetInt32() != 0, $"crash after {k}: {check}");

            // Reopening read-write repairs a dirty (lazy refcounts) image; afterwards it must be clean.
            await using (var reopened = await Qcow2TestImage.OpenAsync(path))
            {
                if (workload.Durable is { } durable)
                {
                    // Every byte holds what the last completed flush made durable, or what was written since.
                    var back = new byte[durable.Length];
                    await reopened.ReadAsync(0, back.AsMemory(0, (int)Math.Min(reopened.Size, back.Length)));
                    for (int i = 0; i < back.Length; i++)
                    {
                        Assert.True(back[i] == durable[i] || back[i] == workload.Current[i], $"crash after {k} writes lost flushed data at byte {i}");
                    }
                }

                var ours = await reopened.CheckAsync(Qcow2RepairMode.Leaks);
                Assert.Equal(0, ours.Corruptions);
            }

            if (k % 8 == 0)
            {
                QemuImg.AssertClean(path, $"after crash at {k} and repair");
            }
        }
    }
}
