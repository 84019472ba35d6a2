using System.Buffers.Binary;
using Strata.Nbd.Protocol;

namespace Strata.Fuzz;

/// <summary>
/// Reads a whole NBD session from both sides' bytes, the client's (the fuzz input) and the server's,
/// and checks what proto.md asks of the server: the greeting; exactly one final reply to each option,
/// naming that option ("Option reply message"); in transmission exactly one reply to each request the
/// server read, simple or structured as negotiated ("Simple reply message", "Structured reply chunk
/// message"), READ data and holes inside the range asked and covering it unless an error is reported.
/// </summary>
/// <remarks>
/// The server may end a session only where proto.md lets it: after bad magic, unknown client flags,
/// NBD_OPT_ABORT, an unknown name in NBD_OPT_EXPORT_NAME, or at the end of the client's bytes. Two
/// requests in flight with the same cookie make replies ambiguous for a simple READ reply; such a
/// session is checked up to that point only.
/// </remarks>
internal sealed class NbdSessionChecker
{
    private const uint KnownClientFlags = NbdWire.ClientFlagFixedNewstyle | NbdWire.ClientFlagNoZeroes;
    private const uint OptionReplyErrorBit = 0x80000000;

    private readonly WireCursor _client;
    private readonly WireCursor _server;
    private bool _noZeroes;
    private bool _structured;

    private NbdSessionChecker(byte[] client, byte[] server)
    {
        _client = new WireCursor(client);
        _server = new WireCursor(server);
    }

    /// <summary>Throws <see cref="FuzzFailure"/> at the first thing the server got wrong.</summary>
    public static void Check(byte[] client, byte[] server) => new NbdSessionChecker(client, server).Run();

    private void Run()
    {
        if (!_server.TryTake(18, out var greeting)
            || BinaryPrimitives.ReadUInt64BigEndian(greeting.Span) != NbdWire.InitialMagic
            || BinaryPrimitives.ReadUInt64BigEndian(greeting.Span[8..]) != NbdWire.OptionMagic)
        {
            throw new FuzzFailure("the server's greeting is missing or wrong");
        }

        if (!_client.TryUInt32(out uint flags))
        {
            ExpectEnd("before the client flags were complete");
            return;
        }

        if ((flags & ~KnownClientFlags) != 0)
        {
            ExpectEnd($"after unknown client flags 0x{flags:x}");
            return;
        }

        _noZeroes = (flags & NbdWire.ClientFlagNoZeroes) != 0;
        if (Negotiate())
        {
            Transmit();
        }
    }

    /// <summary>True when the handshake ended in the transmission phase.</summary>
    private bool Negotiate()
    {
        while (true)
        {
            if (!_client.TryTake(16, out var header))
            {
                ExpectEnd("when the client's bytes ended between options");
                return false;
            }

            if (BinaryPrimitives.ReadUInt64BigEndian(header.Span) != NbdWire.OptionMagic)
            {
                ExpectEnd("after an option with bad magic");
                return false;
            }

            var option = (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(header.Span[8..]);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header.Span[12..]);
            if (!_client.TryTake(length, out _))
            {
                // The client's bytes end inside the option's data. The server reads or skips the data
                // before it answers, unless the option is too large to take at all: then it refuses
                // it at once and disconnects. Either way nothing may follow.
                OptionReply(option, endAllowed: true);
                ExpectEnd($"after option {option} whose data was cut short");
                return false;
            }

            if (option == NbdOption.ExportName)
            {
                // No option reply: the export's size and flags, or a disconnect for an unknown name.
                if (_server.AtEnd)
                {
                    return false;
                }

                if (!_server.TryTake(_noZeroes ? 10 : 134, out _))
                {
                    throw new FuzzFailure("the reply to NBD_OPT_EXPORT_NAME is cut short");
                }

                return true;
            }

            var final = OptionReply(option, endAllowed: false);
            switch (option)
            {
                case NbdOption.Abort:
                    ExpectEnd("after NBD_OPT_ABORT");
                    return false;
                case NbdOption.StructuredReply when final == NbdOptionReply.Ack:
                    _structured = true;
                    break;
                case NbdOption.Go when final == NbdOptionReply.Ack:
                    return true;
            }
        }
    }

    /// <summary>Reads the replies to one option up to its final one (ACK or an error), which it returns.</summary>
    private NbdOptionReply? OptionReply(NbdOption option, bool endAllowed)
    {
        while (true)
        {
            if (_server.AtEnd)
            {
                return endAllowed ? null : throw new FuzzFailure($"option {option} got no final reply");
            }

            if (!_server.TryTake(NbdWire.OptionReplyHeaderSize, out var header)
                || !_server.TryTake(BinaryPrimitives.ReadUInt32BigEndian(header.Span[16..]), out _))
            {
                throw new FuzzFailure($"a reply to option {option} is cut short");
            }

            if (BinaryPrimitives.ReadUInt64BigEndian(header.Span) != NbdWire.OptionReplyMagic)
            {
                throw new FuzzFailure($"a reply to option {option} has bad magic");
            }

            var replyTo = (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(header.Span[8..]);
            if (replyTo != option)
            {
                throw new FuzzFailure($"option {option} got a reply for option {replyTo}");
            }

            var type = (NbdOptionReply)BinaryPrimitives.ReadUInt32BigEndian(header.Span[12..]);
            if (type == NbdOptionReply.Ack || ((uint)type & OptionReplyErrorBit) != 0)
            {
                return type;
            }

            if (type is not (NbdOptionReply.Server or NbdOptionReply.Info or NbdOptionReply.MetaContext))
            {
                throw new FuzzFailure($"option {option} got a reply of unknown type 0x{(uint)type:x}");
            }
        }
    }

    private void Transmit()
    {
        var awaited = ReadRequests();
        if (awaited.Any(pair => pair.Value.Count > 1) && !_structured)
        {
            // Simple READ replies carry data whose length only the request tells: with two requests
            // under one cookie the bytes cannot be told apart. Nothing more can be checked.
            return;
        }

        while (!_server.AtEnd)
        {
            if (!_server.TryUInt32(out uint magic))
            {
                throw new FuzzFailure("a reply is cut short");
            }

            if (magic == NbdWire.SimpleReplyMagic)
            {
                SimpleReply(awaited);
            }
            else if (magic == NbdWire.StructuredReplyMagic)
            {
                Chunk(awaited);
            }
            else
            {
                throw new FuzzFailure($"a reply has bad magic 0x{magic:x8}");
            }
        }

        if (awaited.Values.SelectMany(list => list).FirstOrDefault() is { } missing)
        {
            var r = missing.Request;
            throw new FuzzFailure($"request {r.Command} cookie {r.Cookie} at {r.Offset}+{r.Length} got no reply");
        }
    }

    /// <summary>Every whole request the server reads before the client's bytes end, a bad magic or NBD_CMD_DISC.</summary>
    private Dictionary<ulong, List<NbdAwaitedReply>> ReadRequests()
    {
        var awaited = new Dictionary<ulong, List<NbdAwaitedReply>>();
        while (_client.TryTake(NbdWire.RequestHeaderSize, out var header)
            && NbdRequest.TryRead(header.Span, out var request)
            && request.Command != NbdCommand.Disconnect
            && (request.Command != NbdCommand.Write || _client.TryTake(request.Length, out _)))
        {
            if (!awaited.TryGetValue(request.Cookie, out var list))
            {
                awaited[request.Cookie] = list = [];
            }

            list.Add(new NbdAwaitedReply(request));
        }

        return awaited;
    }

    private void SimpleReply(Dictionary<ulong, List<NbdAwaitedReply>> awaited)
    {
        if (!_server.TryUInt32(out uint error) || !_server.TryTake(8, out var cookieBytes))
        {
            throw new FuzzFailure("a simple reply is cut short");
        }

        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(cookieBytes.Span);
        var reply = Take(awaited, cookie, "a simple reply");
        var request = reply.Request;
        bool alone = awaited[cookie].Count == 1;
        if (alone && _structured && request.Command == NbdCommand.Read)
        {
            throw new FuzzFailure($"READ cookie {request.Cookie} got a simple reply though structured replies were negotiated");
        }

        // Without structured replies no cookie is shared (see Transmit), so the request is known.
        if (!_structured && error == 0 && request.Command == NbdCommand.Read && !_server.TryTake(request.Length, out _))
        {
            throw new FuzzFailure($"the data of READ cookie {request.Cookie} is cut short");
        }

        Complete(awaited, reply);
    }

    private void Chunk(Dictionary<ulong, List<NbdAwaitedReply>> awaited)
    {
        if (!_server.TryTake(NbdWire.ChunkHeaderSize - 4, out var header)
            || !_server.TryTake(BinaryPrimitives.ReadUInt32BigEndian(header.Span[12..]), out var payload))
        {
            throw new FuzzFailure("a structured reply chunk is cut short");
        }

        var flags = (NbdReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(header.Span);
        var type = (NbdReplyType)BinaryPrimitives.ReadUInt16BigEndian(header.Span[2..]);
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(header.Span[4..]);
        if (!_structured)
        {
            throw new FuzzFailure($"cookie {cookie} got a structured chunk ({type}) though structured replies were not negotiated");
        }

        var reply = Take(awaited, cookie, $"a {type} chunk");
        // Under a shared cookie a chunk may belong to any of its requests: only the count of final replies is checked.
        bool alone = awaited[cookie].Count == 1;
        if (alone)
        {
            CheckChunk(reply, type, payload.Span);
        }

        if ((flags & NbdReplyFlags.Done) != 0)
        {
            var request = reply.Request;
            if (alone && request.Command == NbdCommand.Read && !reply.Failed && reply.Covered != request.Length)
            {
                throw new FuzzFailure($"READ cookie {cookie} of {request.Length} bytes ended with {reply.Covered} bytes described");
            }

            Complete(awaited, reply);
        }
        else if (alone && type == NbdReplyType.None)
        {
            throw new FuzzFailure($"cookie {cookie} got NBD_REPLY_TYPE_NONE without NBD_REPLY_FLAG_DONE");
        }
    }

    /// <summary>Checks one chunk's payload against its type (proto.md, "Structured reply types").</summary>
    private static void CheckChunk(NbdAwaitedReply reply, NbdReplyType type, ReadOnlySpan<byte> payload)
    {
        var request = reply.Request;
        switch (type)
        {
            case NbdReplyType.None when payload.Length != 0:
                throw new FuzzFailure($"cookie {request.Cookie}: NBD_REPLY_TYPE_NONE with a payload");
            case NbdReplyType.OffsetData or NbdReplyType.OffsetHole:
                if (request.Command != NbdCommand.Read || payload.Length < 8 || (type == NbdReplyType.OffsetHole && payload.Length != 12))
                {
                    throw new FuzzFailure($"cookie {request.Cookie}: a malformed {type} chunk for {request.Command}");
                }

                ulong offset = BinaryPrimitives.ReadUInt64BigEndian(payload);
                long length = type == NbdReplyType.OffsetData ? payload.Length - 8 : BinaryPrimitives.ReadUInt32BigEndian(payload[8..]);
                if (length == 0 || offset < request.Offset || offset + (ulong)length > request.Offset + request.Length)
                {
                    throw new FuzzFailure($"cookie {request.Cookie}: {type} {offset}+{length} is outside the READ {request.Offset}+{request.Length}");
                }

                reply.Covered += length;
                break;
            case NbdReplyType.Error or NbdReplyType.ErrorOffset:
                if (payload.Length < 6 || payload.Length != 6 + BinaryPrimitives.ReadUInt16BigEndian(payload[4..]) + (type == NbdReplyType.ErrorOffset ? 8 : 0)
                    || BinaryPrimitives.ReadUInt32BigEndian(payload) == 0)
                {
                    throw new FuzzFailure($"cookie {request.Cookie}: a malformed {type} chunk");
                }

                reply.Failed = true;
                break;
            case NbdReplyType.BlockStatus:
                if (request.Command != NbdCommand.BlockStatus || payload.Length < 12 || (payload.Length - 4) % 8 != 0)
                {
                    throw new FuzzFailure($"cookie {request.Cookie}: a malformed block status chunk for {request.Command}");
                }

                break;
            case NbdReplyType.None:
                break;
            default:
                throw new FuzzFailure($"cookie {request.Cookie}: a chunk of unknown type {(ushort)type}");
        }
    }

    private static NbdAwaitedReply Take(Dictionary<ulong, List<NbdAwaitedReply>> awaited, ulong cookie, string what)
        => awaited.TryGetValue(cookie, out var list) && list.Count > 0
            ? list[0]
            : throw new FuzzFailure($"{what} for cookie {cookie}, which no request is waiting on");

    private static void Complete(Dictionary<ulong, List<NbdAwaitedReply>> awaited, NbdAwaitedReply reply)
    {
        var list = awaited[reply.Request.Cookie];
        list.Remove(reply);
        if (list.Count == 0)
        {
            awaited.Remove(reply.Request.Cookie);
        }
    }

    private void ExpectEnd(string when)
    {
        if (!_server.AtEnd)
        {
            throw new FuzzFailure($"the server sent {_server.Remaining} more bytes {when}");
        }
    }
}
