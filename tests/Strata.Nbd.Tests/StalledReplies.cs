using Strata.Block;
using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// A client that never reads its replies on one disk, while another client works on a second disk
/// of the same store (a store whose requests complete on its own callback thread, as librbd's do
/// for every image of a cluster connection): the second must be served as if nothing happened,
/// and the first gets every reply whole once it reads. Shared by the NBD and RBD tests.
/// </summary>
public static class StalledReplies
{
    private const int MiB = 1024 * 1024;

    /// <summary>
    /// Runs the scenario on two disks of at least 16 MiB; <paramref name="completedInline"/> counts the
    /// store's requests completed on its callback thread, which the scenario must have used.
    /// </summary>
    public static async Task RunAsync(IBlockNode stalledDisk, IBlockNode otherDisk, Func<long> completedInline, int seed)
    {
        var random = new Random(seed);
        int size = (int)Math.Min(stalledDisk.Size, 16 * MiB);
        byte[] content = Workload.Pattern(random, size);
        await stalledDisk.WriteAsync(0, content);
        using var folder = new TempFolder();
        await using var stalledServer = Serve(stalledDisk, folder.File("a.sock"));
        await using var otherServer = Serve(otherDisk, folder.File("b.sock"));

        // 1 MiB reads (more than the socket holds) and 4 KiB reads and writes, no reply read.
        using var stalled = await RawConnection.ConnectAsync(folder.File("a.sock"));
        await stalled.GoAsync("disk", structured: false);
        var reads = new Dictionary<ulong, (long Offset, int Length)>();
        byte[] written = Workload.Pattern(random, 16 * 4096);
        int writeFrom = size - written.Length;
        for (ulong cookie = 1; cookie <= 72; cookie++)
        {
            if (cookie % 4 == 0 && cookie / 4 <= 16)
            {
                int block = (int)(cookie / 4) - 1;
                await stalled.SendRequestAsync(NbdCommand.Write, NbdCommandFlags.None, cookie, (ulong)(writeFrom + (block * 4096)), 4096,
                    written[(block * 4096)..((block + 1) * 4096)]);
                continue;
            }

            int length = cookie <= 12 ? MiB : 4096;
            long offset = random.NextInt64((writeFrom - length) / 4096) * 4096;
            reads[cookie] = (offset, length);
            await stalled.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, cookie, (ulong)offset, (uint)length);
        }

        for (int i = 0; i < 600 && stalled.Available < 128 * 1024; i++)
        {
            await Task.Delay(50);
        }

        Assert.True(stalled.Available >= 128 * 1024, "the stalled client never got the start of its replies");

        long inlineBefore = completedInline();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            await using var other = await NbdClient.ConnectAsync(NbdEndpoint.Unix(folder.File("b.sock")), "disk", cancellationToken: timeout.Token);
            var model = new byte[size];
            await otherDisk.ReadAsync(0, model);
            for (int i = 0; i < 150; i++)
            {
                int length = random.Next(1, 257) * 4096;
                long offset = random.NextInt64((size - length) / 4096) * 4096;
                if (random.Next(2) == 0)
                {
                    byte[] data = Workload.Pattern(random, length);
                    await other.WriteAsync(offset, data, cancellationToken: timeout.Token);
                    data.CopyTo(model, offset);
                }
                else
                {
                    var back = new byte[length];
                    await other.ReadAsync(offset, back, cancellationToken: timeout.Token);
                    Assert.True(back.AsSpan().SequenceEqual(model.AsSpan((int)offset, length)),
                        $"seed {seed}: request {i} to the other disk read wrong data at {offset}");
                }
            }
        }

        Assert.True(completedInline() > inlineBefore, "no request completed on the store's callback thread: the scenario did not test that path");

        // Now the stalled client reads: every reply whole, each read's data right, in whatever order.
        for (int n = 0; n < 72; n++)
        {
            var (error, cookie) = await stalled.ReadSimpleReplyAsync();
            Assert.Equal(NbdErrno.None, error);
            if (reads.TryGetValue(cookie, out var read))
            {
                byte[] data = await stalled.ReceiveAsync(read.Length);
                Assert.True(data.AsSpan().SequenceEqual(content.AsSpan((int)read.Offset, read.Length)),
                    $"seed {seed}: the stalled client's read {cookie} at {read.Offset} came back wrong");
            }
        }

        var landed = new byte[written.Length];
        await stalledDisk.ReadAsync(writeFrom, landed);
        Assert.True(landed.AsSpan().SequenceEqual(written), $"seed {seed}: the stalled client's writes did not all land");
    }

    /// <summary>Serves <paramref name="node"/> as export "disk" on a unix socket.</summary>
    public static NbdServer Serve(IBlockNode node, string socket)
    {
        var server = new NbdServer(new SingleExportCatalog(new NbdExport("disk", new RequestGate(node))));
        server.Listen(NbdEndpoint.Unix(socket));
        return server;
    }
}
