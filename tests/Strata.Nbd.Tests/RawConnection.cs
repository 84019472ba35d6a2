using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Tests;

/// <summary>A hand-driven NBD connection for sending what no well-behaved client would.</summary>
public sealed class RawConnection : IDisposable
{
    private readonly Socket _socket;

    private RawConnection(Socket socket) => _socket = socket;

    public static async Task<RawConnection> ConnectAsync(string socketPath, bool greet = true)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        var connection = new RawConnection(socket);
        if (greet)
        {
            var greeting = await connection.ReceiveAsync(18);
            Assert.Equal(NbdWire.InitialMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting));
            await connection.SendAsync(Be32(NbdWire.ClientFlagFixedNewstyle | NbdWire.ClientFlagNoZeroes));
        }

        return connection;
    }

    public Task SendAsync(byte[] data) => _socket.SendAsync(data, SocketFlags.None);

    public Task SendOptionAsync(NbdOption option, byte[] data) => SendOptionAsync((uint)option, (uint)data.Length, data);

    public async Task SendOptionAsync(uint option, uint declaredLength, byte[] data)
    {
        var header = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(header, NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), declaredLength);
        await SendAsync([.. header, .. data]);
    }

    /// <summary>Reads one option reply: its type and data.</summary>
    public async Task<(NbdOptionReply Type, byte[] Data)> ReadOptionReplyAsync()
    {
        var header = await ReceiveAsync(20);
        Assert.Equal(NbdWire.OptionReplyMagic, BinaryPrimitives.ReadUInt64BigEndian(header));
        var data = await ReceiveAsync((int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16)));
        return ((NbdOptionReply)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), data);
    }

    /// <summary>Structured replies, then GO to <paramref name="export"/>; returns the transmission flags.</summary>
    public async Task GoAsync(string export, bool structured = true)
    {
        if (structured)
        {
            await SendOptionAsync(NbdOption.StructuredReply, []);
            Assert.Equal(NbdOptionReply.Ack, (await ReadOptionReplyAsync()).Type);
        }

        await SendOptionAsync(NbdOption.Go, GoData(export));
        while ((await ReadOptionReplyAsync()).Type != NbdOptionReply.Ack)
        {
        }
    }

    public static byte[] GoData(string export)
    {
        byte[] name = Encoding.UTF8.GetBytes(export);
        return [.. Be32((uint)name.Length), .. name, 0, 0];
    }

    public async Task SendRequestAsync(NbdCommand command, NbdCommandFlags flags, ulong cookie, ulong offset, uint length, byte[]? payload = null)
    {
        var header = new byte[NbdWire.RequestHeaderSize];
        new NbdRequest(flags, command, cookie, offset, length).Write(header);
        await SendAsync([.. header, .. payload ?? []]);
    }

    /// <summary>Reads one simple reply (16 bytes) and returns its error and cookie.</summary>
    public async Task<(NbdErrno Error, ulong Cookie)> ReadSimpleReplyAsync()
    {
        var reply = await ReceiveAsync(16);
        Assert.Equal(NbdWire.SimpleReplyMagic, BinaryPrimitives.ReadUInt32BigEndian(reply));
        return ((NbdErrno)BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4)), BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(8)));
    }

    /// <summary>Reads one structured chunk: flags, type, cookie, payload.</summary>
    public async Task<(NbdReplyFlags Flags, NbdReplyType Type, ulong Cookie, byte[] Payload)> ReadChunkAsync()
    {
        var header = await ReceiveAsync(20);
        Assert.Equal(NbdWire.StructuredReplyMagic, BinaryPrimitives.ReadUInt32BigEndian(header));
        var payload = await ReceiveAsync((int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16)));
        return ((NbdReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)), (NbdReplyType)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(6)),
            BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)), payload);
    }

    /// <summary>
    /// Reads the chunks of one structured READ reply up to the final one and returns the bytes they
    /// describe (holes as zeroes); an error chunk fails the test with its message.
    /// </summary>
    public async Task<byte[]> ReadStructuredReadReplyAsync(ulong cookie, ulong offset, int length)
    {
        var data = new byte[length];
        while (true)
        {
            var (flags, type, replyCookie, payload) = await ReadChunkAsync();
            Assert.Equal(cookie, replyCookie);
            switch (type)
            {
                case NbdReplyType.OffsetData:
                    payload.AsSpan(8).CopyTo(data.AsSpan((int)(BinaryPrimitives.ReadUInt64BigEndian(payload) - offset)));
                    break;
                case NbdReplyType.OffsetHole:
                    data.AsSpan((int)(BinaryPrimitives.ReadUInt64BigEndian(payload) - offset), (int)BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(8))).Clear();
                    break;
                case NbdReplyType.None:
                    break;
                default:
                    Assert.Fail($"read {cookie} got a {type} chunk: {Encoding.UTF8.GetString(payload, Math.Min(6, payload.Length), Math.Max(0, payload.Length - 6))}");
                    break;
            }

            if ((flags & NbdReplyFlags.Done) != 0)
            {
                return data;
            }
        }
    }

    /// <summary>Bytes the server has sent that this side has not read yet.</summary>
    public int Available => _socket.Available;

    public async Task<byte[]> ReceiveAsync(int length)
    {
        var buffer = new byte[length];
        int done = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (done < length)
        {
            int n = await _socket.ReceiveAsync(buffer.AsMemory(done), SocketFlags.None, timeout.Token);
            if (n == 0)
            {
                throw new EndOfStreamException($"the server closed the connection after {done} of {length} bytes");
            }

            done += n;
        }

        return buffer;
    }

    /// <summary>True when the server closes the connection (reads end of stream) within 30 seconds.</summary>
    public async Task<bool> IsClosedByServerAsync()
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            while (true)
            {
                int n = await _socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public static byte[] Be32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }

    public void Dispose() => _socket.Dispose();
}
