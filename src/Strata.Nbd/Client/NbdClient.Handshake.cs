using System.Buffers.Binary;
using System.Text;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Client;

/// <summary>The client side of fixed newstyle negotiation (proto.md, "Fixed newstyle negotiation").</summary>
public sealed partial class NbdClient
{
    private async Task GreetAsync(CancellationToken cancellationToken)
    {
        var greeting = new byte[18];
        await _reader.ReadExactlyAsync(greeting, cancellationToken);
        if (BinaryPrimitives.ReadUInt64BigEndian(greeting) != NbdWire.InitialMagic
            || BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)) != NbdWire.OptionMagic)
        {
            throw new NbdException("the peer is not a newstyle NBD server");
        }

        ushort serverFlags = BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
        if ((serverFlags & NbdWire.FlagFixedNewstyle) == 0)
        {
            throw new NbdException("the server does not speak fixed newstyle negotiation");
        }

        uint clientFlags = NbdWire.ClientFlagFixedNewstyle | ((serverFlags & NbdWire.FlagNoZeroes) != 0 ? NbdWire.ClientFlagNoZeroes : 0);
        var reply = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(reply, clientFlags);
        await _writer.SendAsync(reply, cancellationToken);
    }

    private async Task HandshakeAsync(string exportName, NbdClientOptions options, CancellationToken cancellationToken)
    {
        await GreetAsync(cancellationToken);
        byte[] name = Encoding.UTF8.GetBytes(exportName);
        if (options.StructuredReplies)
        {
            await SendOptionAsync(NbdOption.StructuredReply, [], cancellationToken);
            var (type, _) = await ReadOptionReplyAsync(NbdOption.StructuredReply, cancellationToken);
            StructuredReplies = type == NbdOptionReply.Ack;
        }

        if (StructuredReplies && options.MetaContexts.Count > 0)
        {
            await SetMetaContextsAsync(name, options.MetaContexts, cancellationToken);
        }

        ExportName = exportName;
        if (options.UseExportName)
        {
            await SendOptionAsync(NbdOption.ExportName, name, cancellationToken);
            var export = new byte[10];
            await _reader.ReadExactlyAsync(export, cancellationToken);
            Size = BinaryPrimitives.ReadInt64BigEndian(export);
            TransmissionFlags = (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(export.AsSpan(8));
            return;
        }

        // GO: name, then the information wanted (block size constraints, name, description).
        var go = new byte[4 + name.Length + 2 + 6];
        BinaryPrimitives.WriteInt32BigEndian(go, name.Length);
        name.CopyTo(go, 4);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(4 + name.Length), 3);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(6 + name.Length), (ushort)NbdInfoType.BlockSize);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(8 + name.Length), (ushort)NbdInfoType.Name);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(10 + name.Length), (ushort)NbdInfoType.Description);
        await SendOptionAsync(NbdOption.Go, go, cancellationToken);
        while (true)
        {
            var (type, data) = await ReadOptionReplyAsync(NbdOption.Go, cancellationToken);
            if (type == NbdOptionReply.Ack)
            {
                return;
            }

            ThrowIfError(NbdOption.Go, type, data);
            if (type != NbdOptionReply.Info || data.Length < 2)
            {
                continue;
            }

            switch ((NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(data))
            {
                case NbdInfoType.Export when data.Length >= 12:
                    Size = BinaryPrimitives.ReadInt64BigEndian(data.AsSpan(2));
                    TransmissionFlags = (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(10));
                    break;
                case NbdInfoType.Name:
                    ExportName = Encoding.UTF8.GetString(data, 2, data.Length - 2);
                    break;
                case NbdInfoType.Description:
                    Description = Encoding.UTF8.GetString(data, 2, data.Length - 2);
                    break;
                case NbdInfoType.BlockSize when data.Length >= 14:
                    MinimumBlockSize = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(2));
                    PreferredBlockSize = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(6));
                    MaximumBlockSize = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(10));
                    break;
            }
        }
    }

    private async Task SetMetaContextsAsync(byte[] exportName, IReadOnlyList<string> contexts, CancellationToken cancellationToken)
    {
        var queries = contexts.Select(Encoding.UTF8.GetBytes).ToList();
        var data = new byte[4 + exportName.Length + 4 + queries.Sum(q => 4 + q.Length)];
        BinaryPrimitives.WriteInt32BigEndian(data, exportName.Length);
        exportName.CopyTo(data, 4);
        int at = 4 + exportName.Length;
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(at), queries.Count);
        at += 4;
        foreach (var query in queries)
        {
            BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(at), query.Length);
            query.CopyTo(data, at + 4);
            at += 4 + query.Length;
        }

        await SendOptionAsync(NbdOption.SetMetaContext, data, cancellationToken);
        while (true)
        {
            var (type, reply) = await ReadOptionReplyAsync(NbdOption.SetMetaContext, cancellationToken);
            if (type == NbdOptionReply.Ack)
            {
                return;
            }

            ThrowIfError(NbdOption.SetMetaContext, type, reply);
            if (type == NbdOptionReply.MetaContext && reply.Length >= 4)
            {
                _contextNames[BinaryPrimitives.ReadUInt32BigEndian(reply)] = Encoding.UTF8.GetString(reply, 4, reply.Length - 4);
            }
        }
    }

    private async Task SendOptionAsync(NbdOption option, byte[] data, CancellationToken cancellationToken)
    {
        var message = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(message, NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(8), (uint)option);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(12), data.Length);
        data.CopyTo(message, 16);
        await _writer.SendAsync(message, cancellationToken);
    }

    private async Task<(NbdOptionReply Type, byte[] Data)> ReadOptionReplyAsync(NbdOption option, CancellationToken cancellationToken)
    {
        var header = new byte[NbdWire.OptionReplyHeaderSize];
        await _reader.ReadExactlyAsync(header, cancellationToken);
        if (BinaryPrimitives.ReadUInt64BigEndian(header) != NbdWire.OptionReplyMagic
            || BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)) != (uint)option)
        {
            throw new NbdException($"unexpected reply to option {option}");
        }

        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        if (length > 1024 * 1024)
        {
            throw new NbdException($"option reply of {length} bytes is too large");
        }

        var data = new byte[length];
        await _reader.ReadExactlyAsync(data, cancellationToken);
        return ((NbdOptionReply)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), data);
    }

    private static void ThrowIfError(NbdOption option, NbdOptionReply type, byte[] data)
    {
        if (((uint)type & 0x80000000) == 0)
        {
            return;
        }

        string message = data.Length > 0 ? Encoding.UTF8.GetString(data) : type.ToString();
        var errno = type == NbdOptionReply.ErrorUnsupported ? NbdErrno.NotSupported : NbdErrno.InvalidArgument;
        throw new NbdException(errno, $"option {option} refused ({type}): {message}") { OptionReply = type };
    }
}
