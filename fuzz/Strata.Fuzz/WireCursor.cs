using System.Buffers.Binary;

namespace Strata.Fuzz;

/// <summary>Reads big-endian fields from the front of a recorded byte stream (network byte order, proto.md).</summary>
internal sealed class WireCursor(byte[] bytes)
{
    private int _at;

    public bool AtEnd => _at >= bytes.Length;

    public int Remaining => bytes.Length - _at;

    /// <summary>Takes <paramref name="count"/> bytes; false, taking nothing, when fewer are left.</summary>
    public bool TryTake(long count, out ReadOnlyMemory<byte> taken)
    {
        if (count < 0 || count > Remaining)
        {
            taken = default;
            return false;
        }

        taken = bytes.AsMemory(_at, (int)count);
        _at += (int)count;
        return true;
    }

    public bool TryUInt32(out uint value)
    {
        bool ok = TryTake(4, out var taken);
        value = ok ? BinaryPrimitives.ReadUInt32BigEndian(taken.Span) : 0;
        return ok;
    }
}
