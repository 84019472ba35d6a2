using Strata.Nbd.Protocol;

namespace Strata.Nbd.Tests;

/// <summary>
/// A connection's receive loop under many requests in flight, more than its slots: the same answers
/// as a model, nothing lost or stuck, a bad magic or a server stop in the middle.
/// </summary>
public sealed class NbdManyRequestsTests
{
    private const int Size = 12 * 1024 * 1024;

    [Theory]
    [InlineData(20261201)]
    [InlineData(5)]
    [InlineData(11)]
    public async Task ManyRequestsInFlightOfMixedSizesMatchTheModel(int seed)
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        var model = new byte[Size];
        var random = new Random(seed);
        await using (var client = await disk.ConnectAsync())
        {
            for (int round = 0; round < 12; round++)
            {
                // A batch of up to 100 requests on ranges that do not overlap, so their order does not
                // matter; more than the 64 slots, so the server's backpressure is part of the run.
                var batch = new List<Task>();
                var busy = new List<(long Start, long End)>();
                var reads = new List<(long Offset, byte[] Expected, byte[] Buffer)>();
                int requests = random.Next(20, 100);
                for (int i = 0; i < requests; i++)
                {
                    int length = RandomLength(random);
                    long offset = random.NextInt64(0, (Size - length) / 512) * 512;
                    if (busy.Any(b => offset < b.End && b.Start < offset + length))
                    {
                        continue;
                    }

                    busy.Add((offset, offset + length));
                    switch (random.Next(10))
                    {
                        case < 4:
                            var data = new byte[length];
                            random.NextBytes(data);
                            data.CopyTo(model, offset);
                            batch.Add(client.WriteAsync(offset, data, random.Next(8) == 0 ? NbdCommandFlags.Fua : NbdCommandFlags.None));
                            break;
                        case 4:
                            model.AsSpan((int)offset, length).Clear();
                            batch.Add(client.WriteZeroesAsync(offset, (uint)length));
                            break;
                        case 5:
                            batch.Add(client.FlushAsync());
                            break;
                        default:
                            var buffer = new byte[length];
                            reads.Add((offset, model.AsSpan((int)offset, length).ToArray(), buffer));
                            batch.Add(client.ReadAsync(offset, buffer));
                            break;
                    }
                }

                await Task.WhenAll(batch);
                foreach (var (offset, expected, buffer) in reads)
                {
                    int same = buffer.AsSpan().CommonPrefixLength(expected);
                    Assert.True(same == expected.Length, $"seed {seed}, round {round}: the read at {offset} of {expected.Length} bytes differs at byte {same}");
                }
            }
        }

        // The end: writes and a flush still in flight when NBD_CMD_DISC comes, all sent at once.
        var last = await SendAllThenDisconnectAsync(disk, random, model, requests: 80);
        Assert.True(await last.IsClosedByServerAsync(), $"seed {seed}: the connection stayed open after NBD_CMD_DISC");
        last.Dispose();

        var onDisk = await File.ReadAllBytesAsync(disk.ImagePath);
        int match = onDisk.AsSpan().CommonPrefixLength(model);
        Assert.True(match == model.Length, $"seed {seed}: the image differs from the model at byte {match}");
    }

    [Fact]
    public async Task ABadMagicEndsTheConnectionAndTheServerGoesOn()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using (var raw = await RawConnection.ConnectAsync(disk.SocketPath))
        {
            await raw.GoAsync("disk", structured: false);
            await raw.SendRequestAsync(NbdCommand.Write, NbdCommandFlags.None, 1, 0, 4096, new byte[4096]);
            await raw.SendAsync(new byte[NbdWire.RequestHeaderSize]);
            Assert.Equal((NbdErrno.None, 1UL), await raw.ReadSimpleReplyAsync());
            Assert.True(await raw.IsClosedByServerAsync(), "the connection stayed open after a bad magic");
        }

        await using var client = await disk.ConnectAsync();
        var data = new byte[8192];
        new Random(20261201).NextBytes(data);
        await client.WriteAsync(4096, data);
        var back = new byte[data.Length];
        await client.ReadAsync(4096, back);
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task StoppingTheServerAnswersTheRequestsInFlightAndEndsTheConnection()
    {
        var disk = await ServedDisk.StartAsync(Size);
        try
        {
            await using var client = await disk.ConnectAsync();
            var random = new Random(4);
            var writes = Enumerable.Range(0, 40).Select(i =>
            {
                var data = new byte[65536];
                random.NextBytes(data);
                return client.WriteAsync(i * 65536L, data);
            }).ToList();
            await Task.WhenAll(writes);
        }
        finally
        {
            // Returns only once every connection's threads are done (the daemon waits for its connections).
            await disk.DisposeAsync();
        }
    }

    /// <summary>
    /// Sends <paramref name="requests"/> writes of random data (recorded in <paramref name="model"/>), a
    /// flush among them, then NBD_CMD_DISC, in one send; checks that every request is answered with success.
    /// </summary>
    private static async Task<RawConnection> SendAllThenDisconnectAsync(ServedDisk disk, Random random, byte[] model, int requests)
    {
        var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        await raw.GoAsync("disk", structured: false);
        var stream = new List<byte>();
        var header = new byte[NbdWire.RequestHeaderSize];
        var busy = new List<(long Start, long End)>();
        var cookies = new HashSet<ulong>();
        for (int i = 0; i < requests; i++)
        {
            ulong cookie = (ulong)i + 1000;
            if (i == requests / 2)
            {
                new NbdRequest(NbdCommandFlags.None, NbdCommand.Flush, cookie, 0, 0).Write(header);
                stream.AddRange(header);
                cookies.Add(cookie);
                continue;
            }

            int length = RandomLength(random);
            long offset = random.NextInt64(0, (Size - length) / 512) * 512;
            if (busy.Any(b => offset < b.End && b.Start < offset + length))
            {
                continue;
            }

            busy.Add((offset, offset + length));
            var data = new byte[length];
            random.NextBytes(data);
            data.CopyTo(model, offset);
            new NbdRequest(NbdCommandFlags.None, NbdCommand.Write, cookie, (ulong)offset, (uint)length).Write(header);
            stream.AddRange(header);
            stream.AddRange(data);
            cookies.Add(cookie);
        }

        new NbdRequest(NbdCommandFlags.None, NbdCommand.Disconnect, 0, 0, 0).Write(header);
        stream.AddRange(header);
        var send = raw.SendAsync([.. stream]);
        for (int i = 0, count = cookies.Count; i < count; i++)
        {
            var (error, cookie) = await raw.ReadSimpleReplyAsync();
            Assert.Equal(NbdErrno.None, error);
            Assert.True(cookies.Remove(cookie), $"a reply for cookie {cookie}, which is not outstanding");
        }

        await send;
        return raw;
    }

    /// <summary>Mostly small requests, some of several 1 MiB pieces (the server's buffer size).</summary>
    private static int RandomLength(Random random) => random.Next(10) switch
    {
        < 6 => random.Next(1, 17) * 512,
        < 9 => random.Next(1, 257) * 512,
        _ => random.Next(1, 6) * 512 * 1024,
    };
}
