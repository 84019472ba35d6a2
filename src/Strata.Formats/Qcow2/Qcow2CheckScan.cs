namespace Strata.Formats.Qcow2;

/// <summary>The running totals of one check pass: references per host cluster, counts and messages.</summary>
internal sealed class Qcow2CheckScan(uint[] references, int clusterSize)
{
    public uint[] References { get; } = references;

    public List<string> Messages { get; } = [];

    public long Corruptions { get; set; }

    public long Leaks { get; set; }

    public long CheckErrors { get; set; }

    public long Allocated { get; set; }

    public long Fragmented { get; set; }

    public long Compressed { get; set; }

    public void Error(string message)
    {
        Messages.Add(message);
        Corruptions++;
    }

    /// <summary>Counts one reference to every cluster the byte range touches.</summary>
    public void Count(long offset, long length)
    {
        if (length <= 0)
        {
            return;
        }

        long first = offset / clusterSize;
        long last = (offset + length - 1) / clusterSize;
        if (offset < 0 || last >= References.LongLength)
        {
            Error($"ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x{offset:x} size 0x{length:x}");
            return;
        }

        for (long c = first; c <= last; c++)
        {
            References[c]++;
        }
    }
}
