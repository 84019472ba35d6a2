using System.Buffers.Binary;
using System.Text;
using Strata.Block;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Server;

/// <summary>The fixed newstyle handshake (proto.md, "Fixed newstyle negotiation").</summary>
public sealed partial class NbdConnection
{
    /// <summary>Options longer than this are refused with NBD_REP_ERR_TOO_BIG (an honest one needs a few KiB).</summary>
    private const int MaxOptionLength = 64 * 1024;

    /// <summary>An oversized option up to this length is drained so negotiation can go on; beyond it the connection ends.</summary>
    private const int MaxDrainedOptionLength = 16 * 1024 * 1024;

    private const uint BaseAllocationId = 1;
    private const uint AllocationDepthId = 2;

    private bool _structuredReplies;
    private bool _noZeroes;
    private NbdExport? _export;
    private string? _metaContextExport;
    private bool _baseAllocation;
    private bool _allocationDepth;

    /// <summary>Negotiates; true when the client chose an export and transmission begins.</summary>
    private async Task<bool> HandshakeAsync(CancellationToken cancellationToken)
    {
        var greeting = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdWire.InitialMagic);
        BinaryPrimitives.WriteUInt64BigEndian(greeting.AsSpan(8), NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(greeting.AsSpan(16), NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes);
        await _writer.SendAsync(greeting, cancellationToken);

        var word = new byte[16];
        await _reader.ReadExactlyAsync(word.AsMemory(0, 4), cancellationToken);
        uint clientFlags = BinaryPrimitives.ReadUInt32BigEndian(word);
        if ((clientFlags & ~(NbdWire.ClientFlagFixedNewstyle | NbdWire.ClientFlagNoZeroes)) != 0)
        {
            // "If the client sets flags the server does not understand, the server MUST close the connection."
            Log($"unknown client flags 0x{clientFlags:x}: disconnecting");
            return false;
        }

        _noZeroes = (clientFlags & NbdWire.ClientFlagNoZeroes) != 0;
        while (true)
        {
            await _reader.ReadExactlyAsync(word, cancellationToken);
            if (BinaryPrimitives.ReadUInt64BigEndian(word) != NbdWire.OptionMagic)
            {
                Log("bad option magic: disconnecting");
                return false;
            }

            var option = (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(word.AsSpan(8));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(word.AsSpan(12));
            if (length > MaxOptionLength)
            {
                if (length > MaxDrainedOptionLength)
                {
                    await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorTooBig, $"option of {length} bytes is too large", cancellationToken);
                    Log($"option {option} of {length} bytes: disconnecting");
                    return false;
                }

                await _reader.SkipAsync(length, cancellationToken);
                await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorTooBig, $"option of {length} bytes is too large", cancellationToken);
                continue;
            }

            var data = new byte[length];
            await _reader.ReadExactlyAsync(data, cancellationToken);
            Log($"option {option} ({length} bytes)");
            switch (option)
            {
                case NbdOption.ExportName:
                    return await ExportNameAsync(data, cancellationToken);
                case NbdOption.Abort:
                    // "the server SHOULD reply with NBD_REP_ACK" and then close.
                    await ReplyOptionAsync(option, NbdOptionReply.Ack, [], cancellationToken);
                    return false;
                case NbdOption.List:
                    await ListAsync(data, cancellationToken);
                    break;
                case NbdOption.StartTls:
                    await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorPolicy, "TLS is not configured on this server", cancellationToken);
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                    if (await InfoAsync(option, data, cancellationToken))
                    {
                        return true;
                    }

                    break;
                case NbdOption.StructuredReply:
                    if (length != 0)
                    {
                        await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data", cancellationToken);
                        break;
                    }

                    _structuredReplies = true;
                    await ReplyOptionAsync(option, NbdOptionReply.Ack, [], cancellationToken);
                    break;
                case NbdOption.ListMetaContext:
                case NbdOption.SetMetaContext:
                    await MetaContextAsync(option, data, cancellationToken);
                    break;
                default:
                    await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorUnsupported, $"option {(uint)option} is not supported", cancellationToken);
                    break;
            }
        }
    }

    /// <summary>NBD_OPT_EXPORT_NAME: no option reply; an unknown name ends the connection (the only way to refuse it).</summary>
    private async Task<bool> ExportNameAsync(byte[] data, CancellationToken cancellationToken)
    {
        if (data.Length > NbdWire.MaxStringLength || FindExport(data) is not { } export)
        {
            Log("NBD_OPT_EXPORT_NAME for an unknown export: disconnecting");
            return false;
        }

        var reply = new byte[_noZeroes ? 10 : 134];
        BinaryPrimitives.WriteInt64BigEndian(reply, export.Gate.Size);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), (ushort)TransmissionFlags(export));
        await _writer.SendAsync(reply, cancellationToken);
        Select(export);
        return true;
    }

    private async Task ListAsync(byte[] data, CancellationToken cancellationToken)
    {
        if (data.Length != 0)
        {
            await ReplyOptionErrorAsync(NbdOption.List, NbdOptionReply.ErrorInvalid, "NBD_OPT_LIST takes no data", cancellationToken);
            return;
        }

        foreach (var export in _catalog.List())
        {
            byte[] name = Encoding.UTF8.GetBytes(export.Name);
            byte[] description = Encoding.UTF8.GetBytes(export.Description ?? "");
            var reply = new byte[4 + name.Length + description.Length];
            BinaryPrimitives.WriteInt32BigEndian(reply, name.Length);
            name.CopyTo(reply, 4);
            description.CopyTo(reply, 4 + name.Length);
            await ReplyOptionAsync(NbdOption.List, NbdOptionReply.Server, reply, cancellationToken);
        }

        await ReplyOptionAsync(NbdOption.List, NbdOptionReply.Ack, [], cancellationToken);
    }

    /// <summary>NBD_OPT_INFO and NBD_OPT_GO (proto.md): true when GO succeeded and transmission begins.</summary>
    private async Task<bool> InfoAsync(NbdOption option, byte[] data, CancellationToken cancellationToken)
    {
        // Layout: u32 name length, name, u16 number of requests, u16 per request.
        if (data.Length < 6)
        {
            await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorInvalid, "option too short", cancellationToken);
            return false;
        }

        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > NbdWire.MaxStringLength)
        {
            await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorInvalid, $"export name longer than {NbdWire.MaxStringLength} bytes", cancellationToken);
            return false;
        }

        if (data.Length < 6 + nameLength
            || data.Length != 6 + nameLength + (2 * BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength))))
        {
            await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorInvalid, "option length does not match its content", cancellationToken);
            return false;
        }

        var nameBytes = data.AsSpan(4, (int)nameLength);
        if (FindExport(nameBytes) is not { } export)
        {
            await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorUnknown,
                $"no export named '{Encoding.UTF8.GetString(nameBytes)}'", cancellationToken);
            return false;
        }

        int requests = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength));
        bool wantName = false, wantDescription = false;
        for (int i = 0; i < requests; i++)
        {
            var type = (NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(6 + (int)nameLength + (2 * i)));
            wantName |= type == NbdInfoType.Name;
            wantDescription |= type == NbdInfoType.Description;
        }

        var info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)NbdInfoType.Export);
        BinaryPrimitives.WriteInt64BigEndian(info.AsSpan(2), export.Gate.Size);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), (ushort)TransmissionFlags(export));
        await ReplyOptionAsync(option, NbdOptionReply.Info, info, cancellationToken);

        if (wantName)
        {
            await ReplyInfoStringAsync(option, NbdInfoType.Name, export.Name, cancellationToken);
        }

        if (wantDescription && export.Description is { } description)
        {
            await ReplyInfoStringAsync(option, NbdInfoType.Description, description, cancellationToken);
        }

        // Sent whether asked or not: our minimum is the node's alignment (1 for a cached raw file).
        var limits = export.Gate.Root.Limits;
        var blockSize = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(blockSize, (ushort)NbdInfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(2), (uint)Math.Max(1, limits.RequestAlignment));
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(6), (uint)Math.Max(4096, Math.Max(limits.RequestAlignment, limits.PreferredAlignment)));
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(10), (uint)_options.MaxPayload);
        await ReplyOptionAsync(option, NbdOptionReply.Info, blockSize, cancellationToken);

        await ReplyOptionAsync(option, NbdOptionReply.Ack, [], cancellationToken);
        if (option != NbdOption.Go)
        {
            return false;
        }

        Select(export);
        return true;
    }

    /// <summary>NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT (proto.md, "Metadata querying").</summary>
    private async Task MetaContextAsync(NbdOption option, byte[] data, CancellationToken cancellationToken)
    {
        bool set = option == NbdOption.SetMetaContext;
        if (set && !_structuredReplies)
        {
            // Block status replies are structured: the contexts are useless without them.
            await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorInvalid, "negotiate structured replies first", cancellationToken);
            return;
        }

        // Layout: u32 export name length, name, u32 number of queries, per query u32 length and string.
        var queries = new List<string>();
        string? problem = null;
        int pos = 0;
        NbdExport? export = null;
        if (data.Length < 8)
        {
            problem = "option too short";
        }
        else
        {
            uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
            if (nameLength > NbdWire.MaxStringLength)
            {
                problem = $"export name longer than {NbdWire.MaxStringLength} bytes";
            }
            else if (data.Length < 8 + nameLength)
            {
                problem = "option length does not match its content";
            }
            else
            {
                export = FindExport(data.AsSpan(4, (int)nameLength));
                pos = 4 + (int)nameLength;
                uint count = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos));
                pos += 4;
                for (uint i = 0; i < count && problem is null; i++)
                {
                    if (data.Length - pos < 4)
                    {
                        problem = "option length does not match its content";
                        break;
                    }

                    uint queryLength = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos));
                    pos += 4;
                    if (queryLength > NbdWire.MaxStringLength || data.Length - pos < queryLength)
                    {
                        problem = "bad query length";
                        break;
                    }

                    queries.Add(Encoding.UTF8.GetString(data, pos, (int)queryLength));
                    pos += (int)queryLength;
                }

                if (problem is null && pos != data.Length)
                {
                    problem = "option length does not match its content";
                }
            }
        }

        if (problem is not null)
        {
            await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorInvalid, problem, cancellationToken);
            return;
        }

        if (export is null)
        {
            await ReplyOptionErrorAsync(option, NbdOptionReply.ErrorUnknown, "no such export", cancellationToken);
            return;
        }

        bool baseAllocation = false, allocationDepth = false;
        if (queries.Count == 0 && !set)
        {
            // An empty list query asks for every context the server has.
            baseAllocation = allocationDepth = true;
        }

        foreach (string query in queries)
        {
            baseAllocation |= query == NbdWire.BaseAllocation || (!set && query == "base:");
            allocationDepth |= query == NbdWire.QemuAllocationDepth || (!set && query == "qemu:");
        }

        if (baseAllocation)
        {
            await ReplyMetaContextAsync(option, BaseAllocationId, NbdWire.BaseAllocation, cancellationToken);
        }

        if (allocationDepth)
        {
            await ReplyMetaContextAsync(option, AllocationDepthId, NbdWire.QemuAllocationDepth, cancellationToken);
        }

        if (set)
        {
            _baseAllocation = baseAllocation;
            _allocationDepth = allocationDepth;
            _metaContextExport = export.Name;
        }

        await ReplyOptionAsync(option, NbdOptionReply.Ack, [], cancellationToken);
    }

    private void Select(NbdExport export)
    {
        _export = export;
        if (_metaContextExport != export.Name)
        {
            // Contexts were chosen for another export (or none): "the server MUST NOT" carry them over.
            _baseAllocation = _allocationDepth = false;
        }

        Log($"client attached to export '{export.Name}' (structured replies {(_structuredReplies ? "on" : "off")})");
    }

    private NbdExport? FindExport(ReadOnlySpan<byte> name)
    {
        if (name.Length > NbdWire.MaxStringLength)
        {
            return null;
        }

        try
        {
            return _catalog.Find(new UTF8Encoding(false, true).GetString(name));
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private NbdTransmissionFlags TransmissionFlags(NbdExport export)
    {
        var capabilities = export.Gate.Root.Capabilities;
        var flags = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua
            | NbdTransmissionFlags.SendCache;
        if (export.ReadOnly)
        {
            flags |= NbdTransmissionFlags.ReadOnly;
        }
        else
        {
            flags |= NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes;
            if ((capabilities & NodeCapabilities.FastZero) != 0)
            {
                flags |= NbdTransmissionFlags.SendFastZero;
            }
        }

        if (_structuredReplies)
        {
            flags |= NbdTransmissionFlags.SendDontFragment;
        }

        // Every connection reaches the same gate and node, so a flush on one covers writes from all.
        if ((capabilities & NodeCapabilities.MultiConnection) != 0)
        {
            flags |= NbdTransmissionFlags.CanMultiConnection;
        }

        return flags;
    }

    private async Task ReplyInfoStringAsync(NbdOption option, NbdInfoType type, string text, CancellationToken cancellationToken)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var reply = new byte[2 + bytes.Length];
        BinaryPrimitives.WriteUInt16BigEndian(reply, (ushort)type);
        bytes.CopyTo(reply, 2);
        await ReplyOptionAsync(option, NbdOptionReply.Info, reply, cancellationToken);
    }

    private async Task ReplyMetaContextAsync(NbdOption option, uint id, string name, CancellationToken cancellationToken)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        var reply = new byte[4 + bytes.Length];
        BinaryPrimitives.WriteUInt32BigEndian(reply, id);
        bytes.CopyTo(reply, 4);
        await ReplyOptionAsync(option, NbdOptionReply.MetaContext, reply, cancellationToken);
    }

    private Task ReplyOptionErrorAsync(NbdOption option, NbdOptionReply error, string message, CancellationToken cancellationToken)
    {
        Log($"option {option}: {message}");
        return ReplyOptionAsync(option, error, Encoding.UTF8.GetBytes(message), cancellationToken);
    }

    private async Task ReplyOptionAsync(NbdOption option, NbdOptionReply type, byte[] data, CancellationToken cancellationToken)
    {
        var message = new byte[NbdWire.OptionReplyHeaderSize + data.Length];
        NbdReplyHeaders.WriteOptionReply(message, option, type, data.Length);
        data.CopyTo(message, NbdWire.OptionReplyHeaderSize);
        await _writer.SendAsync(message, cancellationToken);
    }
}
