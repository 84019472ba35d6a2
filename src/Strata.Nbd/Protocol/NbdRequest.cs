using System.Buffers.Binary;

namespace Strata.Nbd.Protocol;

/// <summary>One transmission-phase request header (proto.md, "Simple requests"), 28 bytes on the wire.</summary>
public readonly record struct NbdRequest(NbdCommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    /// <summary>Parses a header; false when the magic is wrong (a protocol error: the connection ends).</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out NbdRequest request)
    {
        if (BinaryPrimitives.ReadUInt32BigEndian(source) != NbdWire.RequestMagic)
        {
            request = default;
            return false;
        }

        request = new NbdRequest(
            (NbdCommandFlags)BinaryPrimitives.ReadUInt16BigEndian(source[4..]),
            (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(source[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[24..]));
        return true;
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdWire.RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)Command);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[24..], Length);
    }
}
