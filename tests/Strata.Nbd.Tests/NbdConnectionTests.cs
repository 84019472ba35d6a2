using System.Buffers.Binary;
using System.Security.Cryptography;
using Strata.Block;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// One connection's replies: zero-length reads in both reply modes, reads larger than one buffer
/// piece (streamed), and what a client sees when such a read fails part-way.
/// </summary>
public sealed partial class NbdConnectionTests
{
    private const int MiB = 1024 * 1024;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ZeroLengthReadSucceedsAndTheConnectionGoesOn(bool structured)
    {
        // proto.md leaves the reply to a zero-length read open but says not to disconnect; without
        // structured replies only a simple reply is valid, and libnbd drops a server that sends a chunk.
        await using var disk = await ServedDisk.StartAsync(MiB);
        string output = await Tool.NbdshAsync("-c", $$"""
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
        string[] lines = (await Tool.NbdshAsync("-c", script)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
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
        await Tool.CheckAsync("nbdcopy", "--request-size=33554432", disk.Uri(), copy);
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
}
