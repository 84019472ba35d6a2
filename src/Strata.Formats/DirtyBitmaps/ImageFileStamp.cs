using System.Buffers.Binary;
using System.Text;
using Strata.Formats.Raw;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>
/// What one image file was when a tracker stopped at a drive's close (docs/formats/dirty-bitmap.md,
/// "Lineage"): its identity (device and inode: a file put in its place is another one) and what any
/// write changes (size, modification and status-change times; the status-change time cannot be set
/// back by a tool that copies times). Equal stamps mean nothing wrote the file in between.
/// </summary>
/// <param name="Path">The file's full path (a name relative to the daemon's folder would mean another file to a backup run elsewhere).</param>
internal readonly record struct ImageFileStamp(string Path, ulong Device, ulong Inode, long Size, long ModifiedNs, long ChangedNs)
{
    /// <summary>Bytes of one stamp before its path: device, inode, size, the two times, the path's length.</summary>
    public const int FixedLength = 5 * sizeof(long) + sizeof(ushort);

    private const uint BasicStats = 0x7ff;

    /// <summary>The stamps of <paramref name="files"/>, or null when one is not a local file that stat(2) answers for.</summary>
    public static IReadOnlyList<ImageFileStamp>? Capture(IEnumerable<string> files)
    {
        var stamps = new List<ImageFileStamp>();
        foreach (string file in files)
        {
            if (Of(file) is not { } stamp)
            {
                return null;
            }

            stamps.Add(stamp);
        }

        return stamps;
    }

    /// <summary>Whether <paramref name="stamps"/> are of exactly <paramref name="files"/>, in order.</summary>
    public static bool SameFiles(IReadOnlyList<ImageFileStamp> stamps, IEnumerable<string> files) =>
        stamps.Select(s => s.Path).SequenceEqual(files.Select(System.IO.Path.GetFullPath), StringComparer.Ordinal);

    /// <summary>The stamp of <paramref name="file"/> now (following links), or null when it cannot be had.</summary>
    public static ImageFileStamp? Of(string file)
    {
        string path = System.IO.Path.GetFullPath(file);
        Span<byte> stat = stackalloc byte[Posix.StatxSize];
        if (!Posix.Statx(path, BasicStats, stat))
        {
            return null;
        }

        ulong device = ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(stat[136..]) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(stat[140..]);
        return new ImageFileStamp(path, device, BinaryPrimitives.ReadUInt64LittleEndian(stat[32..]), BinaryPrimitives.ReadInt64LittleEndian(stat[40..]),
            Nanoseconds(stat[112..]), Nanoseconds(stat[96..]));
    }

    /// <summary>The stamps as the header stores them: a 16-bit count, then each stamp and its UTF-8 path.</summary>
    public static byte[] Serialize(IReadOnlyList<ImageFileStamp> stamps)
    {
        var paths = stamps.Select(s => Encoding.UTF8.GetBytes(s.Path)).ToList();
        var output = new byte[sizeof(ushort) + paths.Sum(p => FixedLength + p.Length)];
        BinaryPrimitives.WriteUInt16LittleEndian(output, (ushort)stamps.Count);
        int at = sizeof(ushort);
        for (int i = 0; i < stamps.Count; i++)
        {
            var part = output.AsSpan(at);
            BinaryPrimitives.WriteUInt64LittleEndian(part, stamps[i].Device);
            BinaryPrimitives.WriteUInt64LittleEndian(part[8..], stamps[i].Inode);
            BinaryPrimitives.WriteInt64LittleEndian(part[16..], stamps[i].Size);
            BinaryPrimitives.WriteInt64LittleEndian(part[24..], stamps[i].ModifiedNs);
            BinaryPrimitives.WriteInt64LittleEndian(part[32..], stamps[i].ChangedNs);
            BinaryPrimitives.WriteUInt16LittleEndian(part[40..], (ushort)paths[i].Length);
            paths[i].CopyTo(part[FixedLength..]);
            at += FixedLength + paths[i].Length;
        }

        return output;
    }

    /// <summary>Parses what <see cref="Serialize"/> wrote; null with a reason when it does not fill <paramref name="data"/> exactly.</summary>
    public static IReadOnlyList<ImageFileStamp>? Parse(ReadOnlySpan<byte> data, out string problem)
    {
        problem = "";
        if (data.Length < sizeof(ushort))
        {
            problem = "the image record is shorter than its count";
            return null;
        }

        int count = BinaryPrimitives.ReadUInt16LittleEndian(data);
        var stamps = new List<ImageFileStamp>();
        int at = sizeof(ushort);
        for (int i = 0; i < count; i++)
        {
            if (data.Length - at < FixedLength)
            {
                problem = $"the image record ends inside stamp {i} of {count}";
                return null;
            }

            var part = data[at..];
            int pathLength = BinaryPrimitives.ReadUInt16LittleEndian(part[40..]);
            if (pathLength == 0 || data.Length - at - FixedLength < pathLength)
            {
                problem = $"the image record's stamp {i} has a path of {pathLength} bytes, outside the record";
                return null;
            }

            string path = Encoding.UTF8.GetString(part.Slice(FixedLength, pathLength));
            stamps.Add(new ImageFileStamp(path, BinaryPrimitives.ReadUInt64LittleEndian(part), BinaryPrimitives.ReadUInt64LittleEndian(part[8..]),
                BinaryPrimitives.ReadInt64LittleEndian(part[16..]), BinaryPrimitives.ReadInt64LittleEndian(part[24..]), BinaryPrimitives.ReadInt64LittleEndian(part[32..])));
            at += FixedLength + pathLength;
        }

        if (at != data.Length)
        {
            problem = $"the image record has {data.Length - at} bytes past its {count} stamps";
            return null;
        }

        return stamps;
    }

    /// <summary>Which of <paramref name="stamps"/> no longer matches its file, said in a few words; null when none.</summary>
    public static string? FirstChange(IReadOnlyList<ImageFileStamp> stamps)
    {
        foreach (var stamp in stamps)
        {
            var now = Of(stamp.Path);
            string? change = now switch
            {
                null => "is gone",
                { } n when n.Device != stamp.Device || n.Inode != stamp.Inode => "is another file",
                { } n when n != stamp => "was written",
                _ => null,
            };
            if (change is not null)
            {
                return $"'{stamp.Path}' {change}";
            }
        }

        return null;
    }

    private static long Nanoseconds(ReadOnlySpan<byte> timestamp) =>
        (BinaryPrimitives.ReadInt64LittleEndian(timestamp) * 1_000_000_000L) + BinaryPrimitives.ReadUInt32LittleEndian(timestamp[8..]);
}
