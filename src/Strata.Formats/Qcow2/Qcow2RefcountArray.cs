using System.Buffers.Binary;

namespace Strata.Formats.Qcow2;

/// <summary>
/// Reads and writes entries of a refcount block of any width 2^refcount_order bits (qcow2.txt,
/// "Refcount blocks"): widths of a byte or more are big-endian; sub-byte widths pack from the least
/// significant bit of each byte (entry i of width w is bits (i*w mod 8)… of byte i*w/8), as QEMU does.
/// </summary>
internal static class Qcow2RefcountArray
{
    public static ulong Get(ReadOnlySpan<byte> block, int refcountOrder, int index)
    {
        switch (refcountOrder)
        {
            case 0:
            case 1:
            case 2:
                int bits = 1 << refcountOrder;
                int perByte = 8 / bits;
                int shift = (index % perByte) * bits;
                return (ulong)((block[index / perByte] >> shift) & ((1 << bits) - 1));
            case 3:
                return block[index];
            case 4:
                return BinaryPrimitives.ReadUInt16BigEndian(block[(index * 2)..]);
            case 5:
                return BinaryPrimitives.ReadUInt32BigEndian(block[(index * 4)..]);
            default:
                return BinaryPrimitives.ReadUInt64BigEndian(block[(index * 8)..]);
        }
    }

    public static void Set(Span<byte> block, int refcountOrder, int index, ulong value)
    {
        switch (refcountOrder)
        {
            case 0:
            case 1:
            case 2:
                int bits = 1 << refcountOrder;
                int perByte = 8 / bits;
                int shift = (index % perByte) * bits;
                int mask = ((1 << bits) - 1) << shift;
                ref byte b = ref block[index / perByte];
                b = (byte)((b & ~mask) | (((int)value << shift) & mask));
                break;
            case 3:
                block[index] = (byte)value;
                break;
            case 4:
                BinaryPrimitives.WriteUInt16BigEndian(block[(index * 2)..], (ushort)value);
                break;
            case 5:
                BinaryPrimitives.WriteUInt32BigEndian(block[(index * 4)..], (uint)value);
                break;
            default:
                BinaryPrimitives.WriteUInt64BigEndian(block[(index * 8)..], value);
                break;
        }
    }

    /// <summary>The largest refcount the width can hold.</summary>
    public static ulong MaxValue(int refcountOrder) => refcountOrder >= 6 ? ulong.MaxValue : (1UL << (1 << refcountOrder)) - 1;
}
