using Strata.Block;
using Strata.Formats.Rbd;
using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.Nbd.Tests;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Rbd.Tests;

/// <summary>
/// NBD replies sent from librbd's callback thread (<see cref="InlineCompletion"/>), on a real
/// cluster: that thread serves every image of the cluster connection, so nothing a client does may
/// stop it, and nothing that runs there may start a librbd request.
/// </summary>
public sealed class RbdInlineCompletionTests
{
    private const int MiB = 1024 * 1024;
    private const int Size = 16 * MiB;

    [Fact]
    public async Task AClientThatNeverReadsItsRepliesDoesNotStopAnotherImageOnTheSameClusterConnection()
    {
        // Both images are on one cluster connection: one set of librbd threads.
        int seed = Workload.NewSeed();
        using var stalledImage = new RbdImage("stall");
        using var otherImage = new RbdImage("other");
        await using var stalledNode = await stalledImage.CreateAsync(Size);
        await using var otherNode = await otherImage.CreateAsync(Size);
        await StalledReplies.RunAsync(stalledNode, otherNode,
            () => ((RbdImageNode)stalledNode).CompletedInline + ((RbdImageNode)otherNode).CompletedInline, seed);
    }

    [Fact]
    public async Task ManyLargeAndFuaWritesThroughAFullWriteAroundCacheAllLand()
    {
        // A write-around cache of 1 MiB, past its write-through start: 1 MiB writes 32 at a time keep
        // it full, so librbd queues writes behind the completions its own thread delivers.
        int seed = Workload.NewSeed();
        var random = new Random(seed);
        using var image = new RbdImage("full");
        using var folder = new TempFolder();
        await using (var created = await image.CreateAsync(Size))
        {
        }

        string locator = $"{image.Locator}:rbd_cache_max_dirty=1048576:rbd_cache_target_dirty=524288:rbd_cache_writethrough_until_flush=false";
        await using var node = await RbdImage.OpenAsync(locator);
        await using var server = StalledReplies.Serve(node, folder.File("n.sock"));
        await using var client = await NbdClient.ConnectAsync(NbdEndpoint.Unix(folder.File("n.sock")), "disk");
        var model = new byte[Size];
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        for (int round = 0; round < 4; round++)
        {
            // Writes in flight together have no defined order: each goes where no other of its round does.
            var taken = new bool[Size / 4096];
            var writes = new List<Task>();
            for (int i = 0; i < 32; i++)
            {
                int length = i % 4 == 0 ? 4096 : MiB;
                long offset = random.NextInt64((Size - length) / 4096) * 4096;
                byte[] data = Workload.Pattern(random, length);
                var blocks = taken.AsSpan((int)(offset / 4096), length / 4096);
                if (blocks.Contains(true))
                {
                    continue;
                }

                blocks.Fill(true);
                data.CopyTo(model, offset);
                var flags = i % 3 == 0 ? NbdCommandFlags.Fua : NbdCommandFlags.None;
                writes.Add(client.WriteAsync(offset, data, flags, timeout.Token));
            }

            await Task.WhenAll(writes);
            await client.FlushAsync(timeout.Token);
        }

        var back = new byte[Size];
        for (int at = 0; at < Size; at += MiB)
        {
            await client.ReadAsync(at, back.AsMemory(at, MiB), cancellationToken: timeout.Token);
        }

        long mismatch = back.AsSpan().SequenceEqual(model) ? -1 : back.AsSpan().CommonPrefixLength(model);
        Assert.True(mismatch < 0, $"seed {seed}: the image differs from the model at {mismatch}");
        Assert.True(((RbdImageNode)node).CompletedInline > 0, "no write completed on librbd's thread: the test did not test that path");
    }
}
