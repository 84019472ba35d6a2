using System.Buffers.Binary;
using System.Text;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Client;

/// <summary>The client's receive loop: matches simple replies and structured chunks to pending requests.</summary>
public sealed partial class NbdClient
{
    private async Task ReceiveLoopAsync()
    {
        await Task.Yield();
        var header = new byte[NbdWire.ChunkHeaderSize];
        try
        {
            while (true)
            {
                await _reader.ReadExactlyAsync(header.AsMemory(0, 4), CancellationToken.None);
                uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
                if (magic == NbdWire.SimpleReplyMagic)
                {
                    await _reader.ReadExactlyAsync(header.AsMemory(4, 12), CancellationToken.None);
                    var error = (NbdErrno)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4));
                    var pending = Take(BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)));
                    pending.Error = error;
                    if (error == NbdErrno.None && pending.Command == NbdCommand.Read)
                    {
                        await _reader.ReadExactlyAsync(pending.Buffer, CancellationToken.None);
                    }

                    pending.Completion.TrySetResult();
                }
                else if (magic == NbdWire.StructuredReplyMagic)
                {
                    await _reader.ReadExactlyAsync(header.AsMemory(4, 16), CancellationToken.None);
                    await ReadChunkAsync(header);
                }
                else
                {
                    throw new NbdException($"bad reply magic 0x{magic:x8}");
                }
            }
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            _failure = e;
            foreach (var cookie in _pending.Keys)
            {
                if (_pending.TryRemove(cookie, out var pending))
                {
                    pending.Completion.TrySetException(new IOException($"the connection ended before the reply: {e.Message}", e));
                }
            }
        }
    }

    private async Task ReadChunkAsync(byte[] header)
    {
        var flags = (NbdReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4));
        var type = (NbdReplyType)BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(6));
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        if (!_pending.TryGetValue(cookie, out var pending))
        {
            throw new NbdException($"reply for unknown cookie {cookie}");
        }

        switch (type)
        {
            case NbdReplyType.OffsetData:
            {
                var offsetBytes = new byte[8];
                await _reader.ReadExactlyAsync(offsetBytes, CancellationToken.None);
                long at = BinaryPrimitives.ReadInt64BigEndian(offsetBytes) - pending.Offset;
                int dataLength = checked((int)length - 8);
                if (at < 0 || at + dataLength > pending.Buffer.Length)
                {
                    throw new NbdException("a data chunk lies outside its request");
                }

                await _reader.ReadExactlyAsync(pending.Buffer.Slice((int)at, dataLength), CancellationToken.None);
                pending.Covered += dataLength;
                break;
            }

            case NbdReplyType.OffsetHole:
            {
                var body = new byte[12];
                await _reader.ReadExactlyAsync(body, CancellationToken.None);
                long at = BinaryPrimitives.ReadInt64BigEndian(body) - pending.Offset;
                uint holeLength = BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(8));
                if (at < 0 || at + holeLength > pending.Buffer.Length)
                {
                    throw new NbdException("a hole chunk lies outside its request");
                }

                pending.Buffer.Span.Slice((int)at, (int)holeLength).Clear();
                pending.Covered += holeLength;
                break;
            }

            case NbdReplyType.BlockStatus:
            {
                var body = new byte[length];
                await _reader.ReadExactlyAsync(body, CancellationToken.None);
                uint id = BinaryPrimitives.ReadUInt32BigEndian(body);
                var extents = new List<NbdStatusExtent>();
                for (int i = 4; i + 8 <= body.Length; i += 8)
                {
                    extents.Add(new NbdStatusExtent(BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(i)), BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(i + 4))));
                }

                pending.Status[id] = extents;
                break;
            }

            case NbdReplyType.Error:
            case NbdReplyType.ErrorOffset:
            {
                var body = new byte[length];
                await _reader.ReadExactlyAsync(body, CancellationToken.None);
                pending.Error = (NbdErrno)BinaryPrimitives.ReadUInt32BigEndian(body);
                int messageLength = BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(4));
                pending.Message = Encoding.UTF8.GetString(body, 6, Math.Min(messageLength, body.Length - 6));
                break;
            }

            default:
                await _reader.SkipAsync(length, CancellationToken.None);
                break;
        }

        if ((flags & NbdReplyFlags.Done) != 0)
        {
            Take(cookie);
            if (pending.Error == NbdErrno.None && pending.Command == NbdCommand.Read && pending.Covered != pending.Buffer.Length)
            {
                pending.Error = NbdErrno.IoError;
                pending.Message = $"the server's chunks covered {pending.Covered} of {pending.Buffer.Length} bytes";
            }

            pending.Completion.TrySetResult();
        }
    }

    private NbdPendingRequest Take(ulong cookie) =>
        _pending.TryRemove(cookie, out var pending) ? pending : throw new NbdException($"reply for unknown cookie {cookie}");
}
