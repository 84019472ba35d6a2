using System.Buffers.Binary;

namespace Strata.TestKit;

/// <summary>
/// The corrupt bit (qcow2.txt, incompatible feature bit 1) in image bytes, for tests that check a
/// refused write changed nothing in an image but that bit.
/// </summary>
public static class Qcow2CorruptBit
{
    public const ulong Mask = 1UL << 1;

    /// <summary>
    /// The first offset below <c>before.Length</c> at which <paramref name="after"/> differs from
    /// <paramref name="before"/> with the corrupt bit set, or -1 (bytes appended after it are not compared).
    /// </summary>
    public static long FirstOtherChange(byte[] before, byte[] after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        var expected = before.ToArray();
        var features = expected.AsSpan(Qcow2HeaderOffsets.IncompatibleFeatures);
        BinaryPrimitives.WriteUInt64BigEndian(features, BinaryPrimitives.ReadUInt64BigEndian(features) | Mask);
        int common = expected.AsSpan().CommonPrefixLength(after);
        return common >= expected.Length ? -1 : common;
    }
}
