using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Strata.Block;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// One connection's replies: zero-length reads in both reply modes, reads larger than one buffer
/// piece (streamed), and what a client sees when such a read fails part-way; and what one connection
/// may hold in memory (docs/nbd.md, "Memory"), measured on a real `strata serve` process: its
/// resident set while clients misbehave, and after they leave.
/// </summary>
public sealed class NbdConnectionTests
{
    private const int MiB = 1024 * 1024;

    /// <summary>Room for what is not buffers: the runtime's own growth (code compiled on first use, heap).</summary>
    private const long Slack = 64L * MiB;

    /// <summary>How far above the baseline the resident set may stay once every client has left.</summary>
    private const long Leftover = 32L * MiB;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ZeroLengthReadSucceedsAndTheConnectionGoesOn(bool structured)
    {
        // proto.md leaves the reply to a zero-length read open but says not to disconnect; without
        // structured replies only a simple reply is valid, and libnbd drops a server that sends a chunk.
        await using var disk = await ServedDisk.StartAsync(MiB);
        string output = await Processes.NbdshAsync("-c", $$"""
            h.set_request_structured_replies({{(structured ? "True" : "False")}})
            h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ZERO_SIZE)
            h.connect_uri("{{disk.Uri()}}")
            assert h.get_structured_replies_negotiated() == {{(structured ? "True" : "False")}}
            assert h.pread(0, 4096) == b""
            h.pwrite(b"\x5a" * 4096, 8192)
            assert h.pread(4096, 8192) == b"\x5a" * 4096
            assert h.pread(0, 0) == b""
            print("ok")
            """);
        Assert.Equal("ok", output.Trim());
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public async Task ReadsLargerThanOnePieceReturnTheImageExactly(bool structured, bool dontFragment)
    {
        const int seed = 20261203;
        const long size = 40L * MiB;
        byte[] image = SparseImage(size, seed);
        await using var disk = await ServedDisk.StartAsync(size, prepare: path => File.WriteAllBytes(path, image));
        (long Offset, int Length)[] reads =
        [
            (0, 32 * MiB), (512, 32 * MiB), (3 * MiB + 4096, 7 * MiB + 512), (size - (5 * MiB) - 1, 5 * MiB + 1), (MiB - 1, MiB + 2),
        ];
        // With structured replies every content chunk is counted: DF allows exactly one.
        string read = structured
            ? "chunks = []\n" + "def read(n, at):\n"
                + $"    b = h.pread_structured(n, at, lambda buf, off, status, err: chunks.append(status) or 0, {(dontFragment ? "nbd.CMD_FLAG_DF" : "0")})\n"
                + "    data = sum(1 for c in chunks if c == nbd.READ_DATA)\n" + "    chunks.clear()\n"
                + "    return hashlib.sha256(b).hexdigest() + ' ' + str(data)\n"
            : "def read(n, at):\n    return hashlib.sha256(h.pread(n, at)).hexdigest() + ' 1'\n";
        string script = string.Join('\n',
        [
            "import hashlib",
            $"h.set_request_structured_replies({(structured ? "True" : "False")})",
            $"h.connect_uri(\"{disk.Uri()}\")",
            read,
            .. reads.Select(r => $"print(read({r.Length}, {r.Offset}))"),
        ]);
        string[] lines = (await Processes.NbdshAsync("-c", script)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < reads.Length; i++)
        {
            string expected = Convert.ToHexStringLower(SHA256.HashData(image.AsSpan((int)reads[i].Offset, reads[i].Length)));
            string[] got = lines[i].Split(' ');
            Assert.True(expected == got[0], $"seed {seed}: read at {reads[i].Offset} length {reads[i].Length} differs from the image");
            Assert.True(!dontFragment || got[1] == "1", $"read at {reads[i].Offset} with DF came in {got[1]} data chunks");
        }
    }

    [Fact]
    public async Task NbdcopyWithTheLargestRequestsCopiesTheImageExactly()
    {
        const int seed = 4242;
        const long size = 48L * MiB;
        byte[] image = SparseImage(size, seed);
        await using var disk = await ServedDisk.StartAsync(size, prepare: path => File.WriteAllBytes(path, image));
        string copy = disk.Folder.File("copy.img");
        await Processes.OkAsync("nbdcopy", "--request-size=33554432", disk.Uri(), copy);
        byte[] copied = await File.ReadAllBytesAsync(copy);
        int same = copied.AsSpan().CommonPrefixLength(image);
        Assert.True(same == image.Length, $"seed {seed}: the copy differs from the image at byte {same}");
    }

    [Fact]
    public async Task AFragmentedReadThatFailsPartWayEndsWithAnErrorChunkAndTheConnectionGoesOn()
    {
        await using var served = await ServeFailingReadAsync(NbdCommandFlags.None, structured: true);
        var raw = served.Raw;
        while (true)
        {
            var (flags, type, cookie, payload) = await raw.ReadChunkAsync();
            Assert.Equal(9ul, cookie);
            if ((flags & NbdReplyFlags.Done) != 0)
            {
                Assert.Equal(NbdReplyType.Error, type);
                Assert.Equal((uint)NbdErrno.IoError, BinaryPrimitives.ReadUInt32BigEndian(payload));
                break;
            }

            // Content sent before the error must be true content.
            Assert.Equal(NbdReplyType.OffsetData, type);
            long at = (long)BinaryPrimitives.ReadUInt64BigEndian(payload);
            Assert.True(payload.AsSpan(8).SequenceEqual(served.Content.AsSpan((int)at, payload.Length - 8)), "a data chunk before the error carries wrong bytes");
        }

        await AssertReadsAsync(raw, served.Content, structured: true);
    }

    [Fact]
    public async Task AnUnfragmentedReadThatFailsPartWayIsPaddedThenFailedAndTheConnectionGoesOn()
    {
        // proto.md, NBD_CMD_READ: an error detected mid-chunk still completes the chunk (zero padding),
        // then an error chunk follows; with DF there is only that one content chunk.
        await using var served = await ServeFailingReadAsync(NbdCommandFlags.DontFragment, structured: true);
        var raw = served.Raw;
        var (flags, type, cookie, payload) = await raw.ReadChunkAsync();
        Assert.Equal(9ul, cookie);
        if (type == NbdReplyType.OffsetData)
        {
            Assert.Equal(NbdReplyFlags.None, flags);
            Assert.Equal(8 + (3 * MiB), payload.Length);
            Assert.True(payload.AsSpan(8, MiB).SequenceEqual(served.Content.AsSpan(0, MiB)), "the data before the failure is wrong");
            (flags, type, cookie, payload) = await raw.ReadChunkAsync();
        }

        Assert.Equal(NbdReplyType.Error, type);
        Assert.Equal(NbdReplyFlags.Done, flags);
        Assert.Equal((uint)NbdErrno.IoError, BinaryPrimitives.ReadUInt32BigEndian(payload));
        await AssertReadsAsync(raw, served.Content, structured: true);
    }

    [Fact]
    public async Task ASimpleReadThatFailsPartWayNeverPassesWrongDataAsGood()
    {
        // Without structured replies an error found after the header went out cannot be reported:
        // proto.md requires a hard disconnect then, so the client never takes the rest for data.
        await using var served = await ServeFailingReadAsync(NbdCommandFlags.None, structured: false);
        var raw = served.Raw;
        var (error, cookie) = await raw.ReadSimpleReplyAsync();
        Assert.Equal(9ul, cookie);
        if (error == NbdErrno.None)
        {
            await Assert.ThrowsAsync<EndOfStreamException>(() => raw.ReceiveAsync(3 * MiB));
            return;
        }

        Assert.Equal(NbdErrno.IoError, error);
        await AssertReadsAsync(raw, served.Content, structured: false);
    }

    /// <summary>
    /// Random data with zero runs of every shape the sparse read path meets: a hole across a piece
    /// boundary, single zero granules, short zero runs inside a granule, and a long hole.
    /// </summary>
    private static byte[] SparseImage(long size, int seed)
    {
        var image = new byte[size];
        var random = new Random(seed);
        random.NextBytes(image);
        image.AsSpan(MiB - 8192, 16384).Clear();
        image.AsSpan(5 * MiB, 3 * MiB).Clear();
        for (int i = 0; i < 200; i++)
        {
            image.AsSpan((12 * MiB) + (random.Next(0, 512) * 4096), 4096).Clear();
            image.AsSpan((14 * MiB) + random.Next(0, MiB), random.Next(1, 3000)).Clear();
        }

        image.AsSpan((int)size - (2 * MiB) - 100, MiB).Clear();
        return image;
    }

    private static async Task AssertReadsAsync(RawConnection raw, byte[] content, bool structured)
    {
        await raw.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, 10, 4096, 8192);
        byte[] back;
        if (structured)
        {
            back = await raw.ReadStructuredReadReplyAsync(10, 4096, 8192);
        }
        else
        {
            Assert.Equal((NbdErrno.None, 10ul), await raw.ReadSimpleReplyAsync());
            back = await raw.ReceiveAsync(8192);
        }

        Assert.True(back.AsSpan().SequenceEqual(content.AsSpan(4096, 8192)), "the connection serves wrong data after the failed read");
    }

    /// <summary>
    /// Serves an 8 MiB memory disk whose reads fail from 1.5 MiB on, connects, and sends a 3 MiB read
    /// (cookie 9) from offset 0: its first MiB reads fine, the rest fails.
    /// </summary>
    private static async Task<FailingServer> ServeFailingReadAsync(NbdCommandFlags flags, bool structured)
    {
        var folder = new TempFolder();
        var memory = new MemoryNode(8 * MiB);
        byte[] content = NbdServerTests.Pattern(8 * MiB, 99);
        await memory.WriteAsync(0, content);
        var server = new NbdServer(new SingleExportCatalog(new NbdExport("disk", new RequestGate(new ReadFailingNode(memory, (3 * MiB) / 2)))));
        string socket = folder.File("nbd.sock");
        server.Listen(NbdEndpoint.Unix(socket));
        var raw = await RawConnection.ConnectAsync(socket);
        var served = new FailingServer(folder, server, raw, content);
        await raw.GoAsync("disk", structured);
        await raw.SendRequestAsync(NbdCommand.Read, flags, 9, 0, 3 * MiB);
        return served;
    }

    private sealed record FailingServer(TempFolder Folder, NbdServer Server, RawConnection Raw, byte[] Content) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            Raw.Dispose();
            await Server.DisposeAsync();
            Folder.Dispose();
        }
    }

    [Fact]
    public async Task ClientsThatNeverReadTheirLargeReadsPinLittleAndTheMemoryComesBackAfterThem()
    {
        const int seed = 77;
        const int clients = 16;
        const int readSize = 32 * MiB;
        const long size = 2L * readSize;
        using var folder = new TempFolder();
        byte[] image = NbdServerTests.Pattern((int)size, seed);
        string path = folder.File("disk.img");
        await File.WriteAllBytesAsync(path, image);
        using var serve = await StartServeAsync(folder, path);
        long baseline = await WarmUpAsync(serve, folder, image);

        var connections = new List<RawConnection>();
        try
        {
            for (int c = 0; c < clients; c++)
            {
                var raw = await RawConnection.ConnectAsync(folder.File("n.sock"));
                connections.Add(raw);
                await raw.GoAsync("d");
                for (int i = 0; i < 16; i++)
                {
                    await raw.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, (ulong)i, (ulong)(i % 2 * readSize), readSize);
                }
            }

            // One more floods small requests and reads nothing either: the server must stop reading
            // them rather than queue their replies.
            var flood = await RawConnection.ConnectAsync(folder.File("n.sock"));
            connections.Add(flood);
            await flood.GoAsync("d");
            _ = FloodAsync(flood);

            foreach (var raw in connections.Take(clients))
            {
                await WaitUntilAsync(() => raw.Available >= MiB, "a stalled client never received the start of its reply", serve);
            }

            long grown = Resident(serve.Id) - baseline;
            long promise = (clients + 1) * (new NbdServerOptions().ReadBudget + MiB);
            Assert.True(grown <= promise + Slack,
                $"seed {seed}: {clients} clients that do not read their replies grew the daemon by {grown / MiB} MiB; the promise is {promise / MiB} MiB");
        }
        finally
        {
            foreach (var raw in connections)
            {
                raw.Dispose();
            }
        }

        await WaitUntilAsync(() => Resident(serve.Id) <= baseline + Leftover,
            $"the daemon stayed above {(baseline + Leftover) / MiB} MiB resident after the clients left", serve);
    }

    [Fact]
    public async Task LargeWritesHeldByAStoppedDriveAreReceivedOnlyWithinTheBudgetAndAllLandAfterCont()
    {
        const int seed = 5150;
        const int clients = 3;
        const int writes = 64;
        const int writeSize = 2 * MiB;
        const long size = (long)clients * writes * writeSize;
        using var folder = new TempFolder();
        string path = folder.File("disk.img");
        await Processes.OkAsync("truncate", "-s", size.ToString(CultureInfo.InvariantCulture), path);
        using var serve = await StartServeAsync(folder, path);
        long baseline = await WarmUpAsync(serve, folder, image: null);
        var qmp = await QmpClient.ConnectAsync(folder.File("q.sock"));
        await using (qmp)
        {
            Assert.True((await qmp.SendAsync(new JsonObject { ["execute"] = "stop" })).ContainsKey("return"), "stop failed");

            var connections = new List<RawConnection>();
            try
            {
                int sent = 0;
                var senders = new List<Task>();
                for (int c = 0; c < clients; c++)
                {
                    var raw = await RawConnection.ConnectAsync(folder.File("n.sock"));
                    connections.Add(raw);
                    await raw.GoAsync("d");
                    int client = c;
                    senders.Add(Task.Run(async () =>
                    {
                        for (int i = 0; i < writes; i++)
                        {
                            long offset = ((long)client * writes + i) * writeSize;
                            await raw.SendRequestAsync(NbdCommand.Write, NbdCommandFlags.None, (ulong)i, (ulong)offset, writeSize, WriteData(seed, offset, writeSize));
                            Interlocked.Increment(ref sent);
                        }
                    }));
                }

                // The drive holds every write: the server reads payloads until its budget stops it.
                await WaitUntilSettledAsync(() => Volatile.Read(ref sent), clients * writes, serve);
                long grown = Resident(serve.Id) - baseline;
                var options = new NbdServerOptions();
                long promise = clients * (options.WriteBudget + options.ReadBudget + MiB);
                Assert.True(grown <= promise + Slack,
                    $"seed {seed}: writes held by a stopped drive grew the daemon by {grown / MiB} MiB; the promise is {promise / MiB} MiB");

                Assert.True((await qmp.SendAsync(new JsonObject { ["execute"] = "cont" })).ContainsKey("return"), "cont failed");
                foreach (var raw in connections)
                {
                    for (int i = 0; i < writes; i++)
                    {
                        Assert.Equal(NbdErrno.None, (await raw.ReadSimpleReplyAsync()).Error);
                    }
                }

                await Task.WhenAll(senders);
            }
            finally
            {
                foreach (var raw in connections)
                {
                    raw.Dispose();
                }
            }
        }

        await using (var client = await NbdClient.ConnectAsync(NbdEndpoint.Unix(folder.File("n.sock")), "d"))
        {
            var back = new byte[writeSize];
            for (long offset = 0; offset < size; offset += writeSize)
            {
                await client.ReadAsync(offset, back);
                Assert.True(back.AsSpan().SequenceEqual(WriteData(seed, offset, writeSize)), $"seed {seed}: the write at {offset} did not land");
            }
        }

        await WaitUntilAsync(() => Resident(serve.Id) <= baseline + Leftover,
            $"the daemon stayed above {(baseline + Leftover) / MiB} MiB resident after the clients left", serve);
    }

    private static async Task<BackgroundProcess> StartServeAsync(TempFolder folder, string image)
    {
        var serve = ServeProcess.Start(folder.Path, null,
            "--drive", $"id=d,file={image},format=raw", "--nbd", $"unix:{folder.File("n.sock")}", "--qmp", $"unix:{folder.File("q.sock")}");
        try
        {
            await serve.WaitForFileAsync(folder.File("q.sock"));
            await serve.WaitForFileAsync(folder.File("n.sock"));
            return serve;
        }
        catch
        {
            serve.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs every path the test will use once (reads of one piece and of many, writes), so that what
    /// the runtime compiles on first use is in the baseline; returns the resident set after the client left.
    /// </summary>
    private static async Task<long> WarmUpAsync(BackgroundProcess serve, TempFolder folder, byte[]? image)
    {
        await using (var client = await NbdClient.ConnectAsync(NbdEndpoint.Unix(folder.File("n.sock")), "d"))
        {
            var back = new byte[32 * MiB];
            if (image is null)
            {
                await client.WriteAsync(0, WriteData(1, 0, 2 * MiB));
                await client.WriteAsync(0, new byte[back.Length]);
            }

            for (int round = 0; round < 4; round++)
            {
                await client.ReadAsync(0, back);
                await client.ReadAsync(0, back.AsMemory(0, MiB));
            }

            if (image is not null)
            {
                Assert.True(back.AsSpan().SequenceEqual(image.AsSpan(0, back.Length)), "the warm-up read came back wrong");
            }
        }

        await Task.Delay(500);
        return Resident(serve.Id);
    }

    /// <summary>Sends small reads and block status requests without reading a reply, until the server stops taking them.</summary>
    private static async Task FloodAsync(RawConnection raw)
    {
        try
        {
            for (int i = 0; i < 20_000; i++)
            {
                await raw.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, (ulong)i, (ulong)(i % 1024) * 4096, 4096);
            }
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // The test closed the connection while the server was holding this client back.
        }
    }

    /// <summary>A write's payload: a 4 KiB random tile, different for every offset, repeated.</summary>
    private static byte[] WriteData(int seed, long offset, int length)
    {
        var tile = new byte[4096];
        new Random(HashCode.Combine(seed, offset)).NextBytes(tile);
        var data = new byte[length];
        for (int at = 0; at < length; at += tile.Length)
        {
            tile.CopyTo(data, at);
        }

        return data;
    }

    /// <summary>The process's resident set (VmRSS) in bytes.</summary>
    private static long Resident(int pid)
    {
        string line = File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string failure, BackgroundProcess serve)
    {
        for (int i = 0; i < 600; i++)
        {
            if (condition())
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"{failure} (waited 30 s; resident {Resident(serve.Id) / MiB} MiB)");
    }

    /// <summary>
    /// Waits until every request was sent, or until sending has made no progress for two seconds (the
    /// server holds the client back); bounded at one minute.
    /// </summary>
    private static async Task WaitUntilSettledAsync(Func<int> sent, int total, BackgroundProcess serve)
    {
        int last = -1;
        int still = 0;
        for (int i = 0; i < 1200; i++)
        {
            int now = sent();
            if (now == total)
            {
                return;
            }

            still = now == last ? still + 1 : 0;
            if (still >= 40)
            {
                return;
            }

            last = now;
            await Task.Delay(50);
        }

        Assert.Fail($"the writes neither all went out nor settled within a minute (resident {Resident(serve.Id) / MiB} MiB)");
    }
}
