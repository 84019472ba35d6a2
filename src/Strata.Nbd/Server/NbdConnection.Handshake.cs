using System.Buffers.Binary;
using System.Text;
using Strata.Block;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server.MetaContexts;

namespace Strata.Nbd.Server;

/// <summary>The fixed newstyle handshake (proto.md, "Fixed newstyle negotiation").</summary>
public sealed partial class NbdConnection
{
    /// <summary>Options longer than this are refused with NBD_REP_ERR_TOO_BIG (an honest one needs a few KiB).</summary>
    private const int MaxOptionLength = 64 * 1024;

    /// <summary>An oversized option up to this length is drained so negotiation can go on; beyond it the connection ends.</summary>
    private const int MaxDrainedOptionLength = 16 * 1024 * 1024;

    private bool _structuredReplies;
    private bool _noZeroes;
    private NbdExport? _export;

    // The export this connection attached to (NbdExport.TryAttach), detached when the connection ends.
    private NbdExport? _attached;
    private string? _metaContextExport;

    // The contexts the client set, each with the id this connection gave it (its place in the list, from 1).
    private (uint Id, INbdMetaContext Context)[] _metaContexts = [];

    /// <summary>Negotiates; true when the client chose an export and transmission begins.</summary>
    private bool Handshake()
    {
        var greeting = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdWire.InitialMagic);
        BinaryPrimitives.WriteUInt64BigEndian(greeting.AsSpan(8), NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(greeting.AsSpan(16), NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes);
        _writer.Send(greeting);

        var word = new byte[16];
        _reader.ReadExactly(word.AsSpan(0, 4));
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
            _reader.ReadExactly(word);
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
                    ReplyOptionError(option, NbdOptionReply.ErrorTooBig, $"option of {length} bytes is too large");
                    Log($"option {option} of {length} bytes: disconnecting");
                    return false;
                }

                _reader.Skip(length);
                ReplyOptionError(option, NbdOptionReply.ErrorTooBig, $"option of {length} bytes is too large");
                continue;
            }

            var data = new byte[length];
            _reader.ReadExactly(data);
            Log($"option {option} ({length} bytes)");
            switch (option)
            {
                case NbdOption.ExportName:
                    return ExportName(data);
                case NbdOption.Abort:
                    // "the server SHOULD reply with NBD_REP_ACK" and then close.
                    ReplyOption(option, NbdOptionReply.Ack, []);
                    return false;
                case NbdOption.List:
                    List(data);
                    break;
                case NbdOption.StartTls:
                    ReplyOptionError(option, NbdOptionReply.ErrorPolicy, "TLS is not configured on this server");
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                    if (Info(option, data))
                    {
                        return true;
                    }

                    break;
                case NbdOption.StructuredReply:
                    if (length != 0)
                    {
                        ReplyOptionError(option, NbdOptionReply.ErrorInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
                        break;
                    }

                    _structuredReplies = true;
                    ReplyOption(option, NbdOptionReply.Ack, []);
                    break;
                case NbdOption.ListMetaContext:
                case NbdOption.SetMetaContext:
                    MetaContext(option, data);
                    break;
                default:
                    ReplyOptionError(option, NbdOptionReply.ErrorUnsupported, $"option {(uint)option} is not supported");
                    break;
            }
        }
    }

    /// <summary>NBD_OPT_EXPORT_NAME: no option reply; an unknown name ends the connection (the only way to refuse it).</summary>
    private bool ExportName(byte[] data)
    {
        if (data.Length > NbdWire.MaxStringLength || FindExport(data) is not { } export || !Attach(export))
        {
            Log("NBD_OPT_EXPORT_NAME for an unknown export: disconnecting");
            return false;
        }

        var reply = new byte[_noZeroes ? 10 : 134];
        BinaryPrimitives.WriteInt64BigEndian(reply, export.Gate.Size);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), (ushort)TransmissionFlags(export));
        _writer.Send(reply);
        Select(export);
        return true;
    }

    private void List(byte[] data)
    {
        if (data.Length != 0)
        {
            ReplyOptionError(NbdOption.List, NbdOptionReply.ErrorInvalid, "NBD_OPT_LIST takes no data");
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
            ReplyOption(NbdOption.List, NbdOptionReply.Server, reply);
        }

        ReplyOption(NbdOption.List, NbdOptionReply.Ack, []);
    }

    /// <summary>NBD_OPT_INFO and NBD_OPT_GO (proto.md): true when GO succeeded and transmission begins.</summary>
    private bool Info(NbdOption option, byte[] data)
    {
        // Layout: u32 name length, name, u16 number of requests, u16 per request.
        if (data.Length < 6)
        {
            ReplyOptionError(option, NbdOptionReply.ErrorInvalid, "option too short");
            return false;
        }

        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > NbdWire.MaxStringLength)
        {
            ReplyOptionError(option, NbdOptionReply.ErrorInvalid, $"export name longer than {NbdWire.MaxStringLength} bytes");
            return false;
        }

        if (data.Length < 6 + nameLength
            || data.Length != 6 + nameLength + (2 * BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength))))
        {
            ReplyOptionError(option, NbdOptionReply.ErrorInvalid, "option length does not match its content");
            return false;
        }

        var nameBytes = data.AsSpan(4, (int)nameLength);
        if (FindExport(nameBytes) is not { } export || (option == NbdOption.Go && !Attach(export)))
        {
            ReplyOptionError(option, NbdOptionReply.ErrorUnknown, $"no export named '{Encoding.UTF8.GetString(nameBytes)}'");
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
        ReplyOption(option, NbdOptionReply.Info, info);

        if (wantName)
        {
            ReplyInfoString(option, NbdInfoType.Name, export.Name);
        }

        if (wantDescription && export.Description is { } description)
        {
            ReplyInfoString(option, NbdInfoType.Description, description);
        }

        // Sent whether asked or not. The minimum is 1: the gate pads what is not aligned to the node;
        // the preferred size is at least the node's alignment, which spares that read-modify-write.
        var limits = export.Gate.Root.Limits;
        var blockSize = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(blockSize, (ushort)NbdInfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(2), 1);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(6), (uint)Math.Max(4096, Math.Max(limits.RequestAlignment, limits.PreferredAlignment)));
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(10), (uint)_options.MaxPayload);
        ReplyOption(option, NbdOptionReply.Info, blockSize);

        ReplyOption(option, NbdOptionReply.Ack, []);
        if (option != NbdOption.Go)
        {
            return false;
        }

        Select(export);
        return true;
    }

    /// <summary>NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT (proto.md, "Metadata querying").</summary>
    private void MetaContext(NbdOption option, byte[] data)
    {
        bool set = option == NbdOption.SetMetaContext;
        if (set && !_structuredReplies)
        {
            // Block status replies are structured: the contexts are useless without them.
            ReplyOptionError(option, NbdOptionReply.ErrorInvalid, "negotiate structured replies first");
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
            ReplyOptionError(option, NbdOptionReply.ErrorInvalid, problem);
            return;
        }

        if (export is null)
        {
            ReplyOptionError(option, NbdOptionReply.ErrorUnknown, "no such export");
            return;
        }

        // An empty LIST asks for every context the export has; an empty SET selects none.
        var chosen = export.MetaContexts.Where(c => (queries.Count == 0 && !set) || queries.Any(q => c.Answers(q, listing: !set))).ToArray();
        var selected = new (uint Id, INbdMetaContext Context)[chosen.Length];
        for (int i = 0; i < chosen.Length; i++)
        {
            // Ids are this connection's: a listing carries none (qemu and nbdkit send 0 there).
            selected[i] = ((uint)i + 1, chosen[i]);
            ReplyMetaContext(option, set ? selected[i].Id : 0, chosen[i].Name);
        }

        if (set)
        {
            _metaContexts = selected;
            _metaContextExport = export.Name;
        }

        ReplyOption(option, NbdOptionReply.Ack, []);
    }

    private void Select(NbdExport export)
    {
        _export = export;
        if (_metaContextExport != export.Name)
        {
            // Contexts were chosen for another export (or none): "the server MUST NOT" carry them over.
            _metaContexts = [];
        }

        Log($"client attached to export '{export.Name}' (structured replies {(_structuredReplies ? "on" : "off")})");
    }

    /// <summary>Attaches to the export the client chose; false when it is being removed (then, to the client, it does not exist).</summary>
    private bool Attach(NbdExport export)
    {
        if (!export.TryAttach(this))
        {
            return false;
        }

        _attached = export;
        return true;
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

    private void ReplyInfoString(NbdOption option, NbdInfoType type, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var reply = new byte[2 + bytes.Length];
        BinaryPrimitives.WriteUInt16BigEndian(reply, (ushort)type);
        bytes.CopyTo(reply, 2);
        ReplyOption(option, NbdOptionReply.Info, reply);
    }

    private void ReplyMetaContext(NbdOption option, uint id, string name)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        var reply = new byte[4 + bytes.Length];
        BinaryPrimitives.WriteUInt32BigEndian(reply, id);
        bytes.CopyTo(reply, 4);
        ReplyOption(option, NbdOptionReply.MetaContext, reply);
    }

    private void ReplyOptionError(NbdOption option, NbdOptionReply error, string message)
    {
        Log($"option {option}: {message}");
        ReplyOption(option, error, Encoding.UTF8.GetBytes(message));
    }

    private void ReplyOption(NbdOption option, NbdOptionReply type, byte[] data)
    {
        var message = new byte[NbdWire.OptionReplyHeaderSize + data.Length];
        NbdReplyHeaders.WriteOptionReply(message, option, type, data.Length);
        data.CopyTo(message, NbdWire.OptionReplyHeaderSize);
        _writer.Send(message);
    }
}
