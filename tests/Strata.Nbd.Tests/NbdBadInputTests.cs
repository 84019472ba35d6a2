using System.Buffers.Binary;
using System.Text;
using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server;

namespace Strata.Nbd.Tests;

/// <summary>Issue 3 item 3: every kind of bad input gets the error the spec prescribes; the daemon and other connections carry on.</summary>
public sealed class NbdBadInputTests
{
    private const long Size = 1024 * 1024;

    [Fact]
    public async Task ReadBeyondTheEndIsInvalid()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        var e = await Assert.ThrowsAsync<NbdException>(() => client.ReadAsync(Size - 512, new byte[1024]));
        Assert.Equal(NbdErrno.InvalidArgument, e.Error);
        await AssertStillServesAsync(client);
    }

    [Fact]
    public async Task WriteBeyondTheEndIsNoSpaceAndItsPayloadIsDrained()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        var e = await Assert.ThrowsAsync<NbdException>(() => client.WriteAsync(Size - 512, new byte[1024]));
        Assert.Equal(NbdErrno.NoSpace, e.Error);
        await AssertStillServesAsync(client);
        Assert.Equal(Size, new FileInfo(disk.ImagePath).Length);
    }

    [Fact]
    public async Task OffsetPlusLengthThatOverflowsIsRefused()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        var e = await Assert.ThrowsAsync<NbdException>(() => client.RawRequestAsync(NbdCommand.Read, NbdCommandFlags.None, ulong.MaxValue - 100, 4096, default, new byte[4096]));
        Assert.Equal(NbdErrno.InvalidArgument, e.Error);
        e = await Assert.ThrowsAsync<NbdException>(() => client.RawRequestAsync(NbdCommand.WriteZeroes, NbdCommandFlags.None, ulong.MaxValue - 100, 4096, default));
        Assert.Equal(NbdErrno.NoSpace, e.Error);
        await AssertStillServesAsync(client);
    }

    [Fact]
    public async Task OversizedWriteIsRefusedAfterItsPayloadIsDrained()
    {
        await using var disk = await ServedDisk.StartAsync(64 * 1024 * 1024, new NbdServerOptions { MaxPayload = 1024 * 1024 });
        await using var client = await disk.ConnectAsync();
        var e = await Assert.ThrowsAsync<NbdException>(() => client.WriteAsync(0, new byte[2 * 1024 * 1024]));
        Assert.Equal(NbdErrno.Overflow, e.Error);
        await AssertStillServesAsync(client);
    }

    [Fact]
    public async Task OversizedReadIsOverflow()
    {
        await using var disk = await ServedDisk.StartAsync(64 * 1024 * 1024, new NbdServerOptions { MaxPayload = 1024 * 1024 });
        await using var client = await disk.ConnectAsync();
        var e = await Assert.ThrowsAsync<NbdException>(() => client.ReadAsync(0, new byte[2 * 1024 * 1024]));
        Assert.Equal(NbdErrno.Overflow, e.Error);
        await AssertStillServesAsync(client);
    }

    [Fact]
    public async Task UnknownCommandIsInvalid()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        var e = await Assert.ThrowsAsync<NbdException>(() => client.RawRequestAsync((NbdCommand)42, NbdCommandFlags.None, 0, 512, default));
        Assert.Equal(NbdErrno.InvalidArgument, e.Error);
        await AssertStillServesAsync(client);
    }

    [Fact]
    public async Task UnknownFlagsAreInvalidAndTheWriteIsNotDone()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync();
        var data = NbdServerTests.Pattern(4096, 1);
        var e = await Assert.ThrowsAsync<NbdException>(() => client.WriteAsync(0, data, (NbdCommandFlags)0x8000));
        Assert.Equal(NbdErrno.InvalidArgument, e.Error);
        e = await Assert.ThrowsAsync<NbdException>(() => client.WriteAsync(0, data, NbdCommandFlags.RequestOne));
        Assert.Equal(NbdErrno.InvalidArgument, e.Error);
        await AssertStillServesAsync(client);
        Assert.True((await File.ReadAllBytesAsync(disk.ImagePath)).AsSpan(0, 4096).IndexOfAnyExcept((byte)0) < 0, "a refused write reached the image");
    }

    [Fact]
    public async Task WriteToReadOnlyExportIsPermissionDenied()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync("ro");
        var e = await Assert.ThrowsAsync<NbdException>(() => client.WriteAsync(0, new byte[4096]));
        Assert.Equal(NbdErrno.PermissionDenied, e.Error);
        e = await Assert.ThrowsAsync<NbdException>(() => client.TrimAsync(0, 4096));
        Assert.Equal(NbdErrno.PermissionDenied, e.Error);
        e = await Assert.ThrowsAsync<NbdException>(() => client.WriteZeroesAsync(0, 4096));
        Assert.Equal(NbdErrno.PermissionDenied, e.Error);
        await AssertStillServesAsync(client, write: false);
    }

    [Fact]
    public async Task BlockStatusWithoutContextIsInvalid()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var client = await disk.ConnectAsync(options: new NbdClientOptions { MetaContexts = [] });
        var e = await Assert.ThrowsAsync<NbdException>(() => client.BlockStatusAsync(0, 4096));
        Assert.Equal(NbdErrno.InvalidArgument, e.Error);
        await AssertStillServesAsync(client);
    }

    [Fact]
    public async Task SetMetaContextBeforeStructuredRepliesIsInvalid()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        await raw.SendOptionAsync(NbdOption.SetMetaContext, MetaContextData("disk", NbdWire.BaseAllocation));
        Assert.Equal(NbdOptionReply.ErrorInvalid, (await raw.ReadOptionReplyAsync()).Type);
        await raw.GoAsync("disk");
    }

    [Fact]
    public async Task ExportNameOver4096BytesIsInvalid()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        await raw.SendOptionAsync(NbdOption.Go, RawConnection.GoData(new string('x', 5000)));
        Assert.Equal(NbdOptionReply.ErrorInvalid, (await raw.ReadOptionReplyAsync()).Type);
        await raw.SendOptionAsync(NbdOption.Info, RawConnection.GoData("nosuch"));
        Assert.Equal(NbdOptionReply.ErrorUnknown, (await raw.ReadOptionReplyAsync()).Type);
        await raw.GoAsync("disk");
    }

    [Fact]
    public async Task MalformedOptionLengthsAreInvalid()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        // GO whose name length points past the option's end.
        await raw.SendOptionAsync(NbdOption.Go, [.. RawConnection.Be32(1000), .. "disk"u8.ToArray(), 0, 0]);
        Assert.Equal(NbdOptionReply.ErrorInvalid, (await raw.ReadOptionReplyAsync()).Type);
        await raw.SendOptionAsync(NbdOption.List, [1, 2, 3]);
        Assert.Equal(NbdOptionReply.ErrorInvalid, (await raw.ReadOptionReplyAsync()).Type);
        await raw.SendOptionAsync(NbdOption.StructuredReply, [1]);
        Assert.Equal(NbdOptionReply.ErrorInvalid, (await raw.ReadOptionReplyAsync()).Type);
        await raw.SendOptionAsync(77, 0, []);
        Assert.Equal(NbdOptionReply.ErrorUnsupported, (await raw.ReadOptionReplyAsync()).Type);
        await raw.GoAsync("disk");
    }

    [Fact]
    public async Task OptionLengthNear4GiBIsTooBigAndEndsTheConnection()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        await raw.SendOptionAsync((uint)NbdOption.Go, 0xFFFFFFF0, new byte[100]);
        Assert.Equal(NbdOptionReply.ErrorTooBig, (await raw.ReadOptionReplyAsync()).Type);
        Assert.True(await raw.IsClosedByServerAsync());
        await AssertOtherClientsServedAsync(disk);
    }

    [Fact]
    public async Task ModeratelyOversizedOptionIsDrainedAndNegotiationGoesOn()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        await raw.SendOptionAsync(NbdOption.Go, new byte[200_000]);
        Assert.Equal(NbdOptionReply.ErrorTooBig, (await raw.ReadOptionReplyAsync()).Type);
        await raw.GoAsync("disk");
    }

    [Fact]
    public async Task UnknownClientFlagsEndTheConnection()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using var raw = await RawConnection.ConnectAsync(disk.SocketPath, greet: false);
        await raw.ReceiveAsync(18);
        await raw.SendAsync(RawConnection.Be32(0x80));
        Assert.True(await raw.IsClosedByServerAsync());
    }

    [Fact]
    public async Task StalledHandshakeIsCutOffWhileOthersAreServed()
    {
        await using var disk = await ServedDisk.StartAsync(Size, new NbdServerOptions { HandshakeTimeout = TimeSpan.FromSeconds(1) });
        using var stalled = await RawConnection.ConnectAsync(disk.SocketPath, greet: false);
        await AssertOtherClientsServedAsync(disk);
        Assert.True(await stalled.IsClosedByServerAsync());
        await AssertOtherClientsServedAsync(disk);
    }

    [Fact]
    public async Task ClientVanishingMidWriteWritesNothing()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using (var raw = await RawConnection.ConnectAsync(disk.SocketPath))
        {
            await raw.GoAsync("disk");
            await raw.SendRequestAsync(NbdCommand.Write, NbdCommandFlags.None, 1, 0, 65536, NbdServerTests.Pattern(30000, 4));
        }

        await AssertOtherClientsServedAsync(disk);
        Assert.True((await File.ReadAllBytesAsync(disk.ImagePath)).AsSpan(0, 65536).IndexOfAnyExcept((byte)0) < 0, "a half-received write reached the image");
    }

    [Fact]
    public async Task BadRequestMagicEndsOnlyThatConnection()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        await using var other = await disk.ConnectAsync();
        using var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        await raw.GoAsync("disk");
        await raw.SendAsync(new byte[28]);
        Assert.True(await raw.IsClosedByServerAsync());
        await AssertStillServesAsync(other);
    }

    [Fact]
    public async Task ConnectionsBeyondTheLimitAreRefusedWhileNoneIsIdle()
    {
        // Both connections are fresh, so neither may be evicted: the third client waits for a place
        // as long as a handshake may take, then is closed.
        await using var disk = await ServedDisk.StartAsync(Size, new NbdServerOptions { MaxConnections = 2, HandshakeTimeout = TimeSpan.FromSeconds(1) });
        await using var first = await disk.ConnectAsync();
        await using var second = await disk.ConnectAsync();
        using var third = await RawConnection.ConnectAsync(disk.SocketPath, greet: false);
        Assert.True(await third.IsClosedByServerAsync());
        await AssertStillServesAsync(first);
        await second.DisconnectAsync();
        for (int i = 0; i < 100 && disk.Daemon is not null; i++)
        {
            try
            {
                await using var again = await disk.ConnectAsync();
                await AssertStillServesAsync(again);
                return;
            }
            catch (IOException)
            {
                // The server has not yet seen the second connection go.
                await Task.Delay(50);
            }
        }

        Assert.Fail("no connection was accepted after one closed");
    }

    [Fact]
    public async Task ErrorRepliesToStructuredReadsCarryAMessage()
    {
        await using var disk = await ServedDisk.StartAsync(Size);
        using var raw = await RawConnection.ConnectAsync(disk.SocketPath);
        await raw.GoAsync("disk");
        await raw.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, 7, (ulong)Size, 512);
        var (flags, type, cookie, payload) = await raw.ReadChunkAsync();
        Assert.Equal(NbdReplyType.Error, type);
        Assert.Equal(NbdReplyFlags.Done, flags);
        Assert.Equal(7ul, cookie);
        Assert.Equal((uint)NbdErrno.InvalidArgument, BinaryPrimitives.ReadUInt32BigEndian(payload));
        Assert.Contains("beyond the end", Encoding.UTF8.GetString(payload, 6, payload.Length - 6));
    }

    private static byte[] MetaContextData(string export, params string[] queries)
    {
        var data = new List<byte>();
        byte[] name = Encoding.UTF8.GetBytes(export);
        data.AddRange(RawConnection.Be32((uint)name.Length));
        data.AddRange(name);
        data.AddRange(RawConnection.Be32((uint)queries.Length));
        foreach (string query in queries)
        {
            byte[] q = Encoding.UTF8.GetBytes(query);
            data.AddRange(RawConnection.Be32((uint)q.Length));
            data.AddRange(q);
        }

        return [.. data];
    }

    private static async Task AssertOtherClientsServedAsync(ServedDisk disk)
    {
        await using var client = await disk.ConnectAsync();
        await AssertStillServesAsync(client);
    }

    private static async Task AssertStillServesAsync(NbdClient client, bool write = true)
    {
        var data = NbdServerTests.Pattern(4096, 77);
        long offset = client.Size - 8192;
        if (write)
        {
            await client.WriteAsync(offset, data);
        }

        var back = new byte[4096];
        await client.ReadAsync(offset, back);
        if (write)
        {
            Assert.Equal(data, back);
        }
    }
}
