using System.Buffers.Binary;

namespace Strata.Nbd.Protocol;

/// <summary>Writers of the server's reply headers (proto.md, "Simple reply message", "Structured reply chunk message").</summary>
public static class NbdReplyHeaders
{
    public static void WriteSimple(Span<byte> destination, NbdErrno error, ulong cookie)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdWire.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], (uint)error);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
    }

    public static void WriteChunk(Span<byte> destination, NbdReplyFlags flags, NbdReplyType type, ulong cookie, int length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdWire.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)type);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], (uint)length);
    }

    public static void WriteOptionReply(Span<byte> destination, NbdOption option, NbdOptionReply type, int length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, NbdWire.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], (uint)length);
    }
}
