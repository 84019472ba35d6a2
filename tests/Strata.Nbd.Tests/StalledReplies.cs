using System.Buffers.Binary;
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
        content.AsSpan(8 * MiB, 2 * MiB).Clear();
        await stalledDisk.WriteAsync(0, content);
        using var folder = new TempFolder();
        await using var stalledServer = Serve(stalledDisk, folder.File("a.sock"));
        await using var otherServer = Serve(otherDisk, folder.File("b.sock"));

        // Structured replies: 1 MiB reads (more than the socket holds), 2 MiB reads in chunks and
        // one not fragmented (DF), reads of a zeroed region (hole chunks), 4 KiB reads and writes;
        // no reply read.
        using var stalled = await RawConnection.ConnectAsync(folder.File("a.sock"));
        await stalled.GoAsync("disk", structured: true);
        var reads = new Dictionary<ulong, (long Offset, int Length)>();
        byte[] written = Workload.Pattern(random, 16 * 4096);
        int writeFrom = size - written.Length;
        const int Requests = 72;
        for (ulong cookie = 1; cookie <= Requests; cookie++)
        {
            if (cookie % 4 == 0 && cookie / 4 <= 16)
            {
                int block = (int)(cookie / 4) - 1;
                await stalled.SendRequestAsync(NbdCommand.Write, NbdCommandFlags.None, cookie, (ulong)(writeFrom + (block * 4096)), 4096,
                    written[(block * 4096)..((block + 1) * 4096)]);
                continue;
            }

            var (offset, length, flags) = cookie switch
            {
                <= 6 => (random.NextInt64((writeFrom - MiB) / 4096) * 4096, MiB, NbdCommandFlags.None),
                <= 9 => (random.NextInt64((writeFrom - (2 * MiB)) / 4096) * 4096, 2 * MiB, cookie == 9 ? NbdCommandFlags.DontFragment : NbdCommandFlags.None),
                <= 14 => ((8 * MiB) - (64 * 1024) + (random.Next(32) * 4096), MiB, NbdCommandFlags.None),
                _ => (random.NextInt64((writeFrom - 4096) / 4096) * 4096, 4096, NbdCommandFlags.None),
            };
            reads[cookie] = (offset, length);
            await stalled.SendRequestAsync(NbdCommand.Read, flags, cookie, (ulong)offset, (uint)length);
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

        // Now the stalled client reads: every reply whole (chunks of different reads may interleave),
        // each read's data right.
        var received = reads.ToDictionary(r => r.Key, r => Enumerable.Repeat((byte)0xa5, r.Value.Length).ToArray());
        var done = new HashSet<ulong>();
        int holes = 0;
        while (done.Count < Requests)
        {
            var (cookie, finished, hole) = await ReadReplyAsync(stalled, reads, received, seed);
            holes += hole ? 1 : 0;
            if (finished)
            {
                Assert.True(done.Add(cookie), $"seed {seed}: request {cookie} was answered twice");
            }
        }

        Assert.True(holes > 0, "no hole chunk came: the scenario did not test sparse replies");
        foreach (var (cookie, (offset, length)) in reads)
        {
            Assert.True(received[cookie].AsSpan().SequenceEqual(content.AsSpan((int)offset, length)),
                $"seed {seed}: the stalled client's read {cookie} at {offset} length {length} came back wrong");
        }

        var landed = new byte[written.Length];
        await stalledDisk.ReadAsync(writeFrom, landed);
        Assert.True(landed.AsSpan().SequenceEqual(written), $"seed {seed}: the stalled client's writes did not all land");
    }

    /// <summary>
    /// Reads one simple reply (a write's) or one structured chunk (a read's), filling
    /// <paramref name="received"/>; returns its cookie, whether that request is now answered, and whether the chunk was a hole.
    /// </summary>
    private static async Task<(ulong Cookie, bool Finished, bool Hole)> ReadReplyAsync(RawConnection connection,
        Dictionary<ulong, (long Offset, int Length)> reads, Dictionary<ulong, byte[]> received, int seed)
    {
        byte[] magic = await connection.ReceiveAsync(4);
        if (BinaryPrimitives.ReadUInt32BigEndian(magic) == NbdWire.SimpleReplyMagic)
        {
            byte[] rest = await connection.ReceiveAsync(12);
            ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(rest.AsSpan(4));
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(rest));
            Assert.False(reads.ContainsKey(cookie), $"seed {seed}: read {cookie} got a simple reply under structured replies");
            return (cookie, true, false);
        }

        Assert.Equal(NbdWire.StructuredReplyMagic, BinaryPrimitives.ReadUInt32BigEndian(magic));
        byte[] header = await connection.ReceiveAsync(16);
        var flags = (NbdReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(header);
        var type = (NbdReplyType)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2));
        ulong chunkCookie = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(4));
        byte[] payload = await connection.ReceiveAsync((int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)));
        Assert.True(reads.TryGetValue(chunkCookie, out var read), $"seed {seed}: a chunk for cookie {chunkCookie}, which is no read");
        var into = received[chunkCookie];
        switch (type)
        {
            case NbdReplyType.OffsetData:
                payload.AsSpan(8).CopyTo(into.AsSpan((int)((long)BinaryPrimitives.ReadUInt64BigEndian(payload) - read.Offset)));
                break;
            case NbdReplyType.OffsetHole:
                into.AsSpan((int)((long)BinaryPrimitives.ReadUInt64BigEndian(payload) - read.Offset), (int)BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(8))).Clear();
                break;
            case NbdReplyType.None:
                break;
            default:
                Assert.Fail($"seed {seed}: read {chunkCookie} got a {type} chunk");
                break;
        }

        return (chunkCookie, (flags & NbdReplyFlags.Done) != 0, type == NbdReplyType.OffsetHole);
    }

    /// <summary>Serves <paramref name="node"/> as export "disk" on a unix socket.</summary>
    public static NbdServer Serve(IBlockNode node, string socket)
    {
        var server = new NbdServer(new SingleExportCatalog(new NbdExport("disk", new RequestGate(node))));
        server.Listen(NbdEndpoint.Unix(socket));
        return server;
    }
}
