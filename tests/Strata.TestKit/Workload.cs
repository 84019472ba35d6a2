namespace Strata.TestKit;

/// <summary>
/// Seeded random workloads of writes, write-zeroes, discards and flushes. The same seed always gives
/// the same requests, so a failure is reproduced from the seed printed in its message.
/// </summary>
public static class Workload
{
    /// <summary>A fresh seed for a test run (print it in every assertion message).</summary>
    public static int NewSeed() => Random.Shared.Next();

    /// <param name="seed">Drives every choice.</param>
    /// <param name="diskSize">Requests stay inside [0, diskSize).</param>
    /// <param name="count">How many requests.</param>
    /// <param name="alignment">Offsets and lengths are multiples of this.</param>
    /// <param name="maxLength">Longest request (rounded down to the alignment).</param>
    /// <param name="mix">Percentages of write / write-zeroes / discard; the rest are flushes.</param>
    public static IReadOnlyList<DiskOp> Generate(int seed, long diskSize, int count, int alignment = 512, int maxLength = 256 * 1024,
        (int Write, int Zero, int Discard)? mix = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(alignment, 1);
        var (write, zero, discard) = mix ?? (65, 15, 15);
        var random = new Random(seed);
        long units = diskSize / alignment;
        int maxUnits = (int)Math.Max(1, Math.Min(maxLength / alignment, units));
        var ops = new List<DiskOp>(count);
        for (int i = 0; i < count; i++)
        {
            int pick = random.Next(100);
            if (pick >= write + zero + discard)
            {
                ops.Add(new DiskOp(DiskOpKind.Flush, 0, 0));
                continue;
            }

            // Short requests dominate (partial clusters, copy-on-write), with a tail of long ones.
            int lengthUnits = random.Next(4) == 0 ? random.Next(1, maxUnits + 1) : random.Next(1, Math.Min(maxUnits, 16) + 1);
            long startUnit = random.NextInt64(0, units - lengthUnits + 1);
            long offset = startUnit * alignment;
            long length = (long)lengthUnits * alignment;
            if (pick < write)
            {
                ops.Add(new DiskOp(DiskOpKind.Write, offset, length, Pattern(random, (int)length)));
            }
            else if (pick < write + zero)
            {
                ops.Add(new DiskOp(random.Next(2) == 0 ? DiskOpKind.WriteZeroes : DiskOpKind.WriteZeroesUnmap, offset, length));
            }
            else
            {
                ops.Add(new DiskOp(DiskOpKind.Discard, offset, length));
            }
        }

        return ops;
    }

    /// <summary>Bytes that never look like zeroes by accident and differ between requests.</summary>
    public static byte[] Pattern(Random random, int length)
    {
        ArgumentNullException.ThrowIfNull(random);
        var data = new byte[length];
        random.NextBytes(data);
        for (int i = 0; i < data.Length; i += 512)
        {
            data[i] |= 1;
        }

        return data;
    }
}
