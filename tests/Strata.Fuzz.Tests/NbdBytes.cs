using System.Buffers.Binary;
using System.Text;
using Strata.Nbd.Protocol;

namespace Strata.Fuzz.Tests;

/// <summary>Builds either side of an NBD session byte by byte (proto.md), for checking the checker.</summary>
internal sealed class NbdBytes
{
    private readonly List<byte> _bytes = [];

    public byte[] ToArray() => [.. _bytes];

    public NbdBytes Greeting() => U64(NbdWire.InitialMagic).U64(NbdWire.OptionMagic).U16(NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes);

    public NbdBytes ClientFlags() => U32(NbdWire.ClientFlagFixedNewstyle | NbdWire.ClientFlagNoZeroes);

    public NbdBytes Option(NbdOption option, byte[]? data = null) => U64(NbdWire.OptionMagic).U32((uint)option).U32((uint)(data?.Length ?? 0)).Raw(data ?? []);

    public NbdBytes Go(string export) => Option(NbdOption.Go, [.. Be32((uint)export.Length), .. Encoding.UTF8.GetBytes(export), 0, 0]);

    public NbdBytes OptionReply(NbdOption option, NbdOptionReply type, byte[]? data = null)
        => U64(NbdWire.OptionReplyMagic).U32((uint)option).U32((uint)type).U32((uint)(data?.Length ?? 0)).Raw(data ?? []);

    public NbdBytes Request(NbdCommand command, ulong cookie, ulong offset, uint length, byte[]? payload = null)
    {
        var header = new byte[NbdWire.RequestHeaderSize];
        new NbdRequest(NbdCommandFlags.None, command, cookie, offset, length).Write(header);
        return Raw(header).Raw(payload ?? []);
    }

    public NbdBytes Simple(ulong cookie, uint error = 0, byte[]? data = null) => U32(NbdWire.SimpleReplyMagic).U32(error).U64(cookie).Raw(data ?? []);

    public NbdBytes Chunk(ulong cookie, NbdReplyType type, byte[] payload, bool done = true)
        => U32(NbdWire.StructuredReplyMagic).U16((ushort)(done ? NbdReplyFlags.Done : NbdReplyFlags.None)).U16((ushort)type)
            .U64(cookie).U32((uint)payload.Length).Raw(payload);

    public NbdBytes OffsetData(ulong cookie, ulong offset, int length, bool done = true)
        => Chunk(cookie, NbdReplyType.OffsetData, [.. Be64(offset), .. new byte[length]], done);

    public NbdBytes Raw(byte[] bytes)
    {
        _bytes.AddRange(bytes);
        return this;
    }

    private NbdBytes U16(ushort value) => Raw([(byte)(value >> 8), (byte)value]);

    private NbdBytes U32(uint value) => Raw(Be32(value));

    private NbdBytes U64(ulong value) => Raw(Be64(value));

    private static byte[] Be32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }

    private static byte[] Be64(ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return bytes;
    }
}
