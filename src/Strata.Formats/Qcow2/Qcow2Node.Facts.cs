using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>
/// What a qcow2 image tells callers that do not know the format: its header facts for <c>info</c>
/// (QEMU's ImageInfoSpecificQCow2 fields, by their QAPI names) and its file child.
/// </summary>
public sealed partial class Qcow2Node : IImageFacts, IFormatNode
{
    public ImageFormatInfo FormatInfo
    {
        get
        {
            var info = Info;
            var specific = new List<KeyValuePair<string, object>>
            {
                new("compat", info.Compat),
                new("compression-type", info.CompressionType),
            };
            if (info.Version >= 3)
            {
                specific.Add(new("lazy-refcounts", info.LazyRefcounts));
            }

            // QAPI's Qcow2BitmapInfo: flags (in-use, auto), name, granularity; shown only when there are bitmaps.
            if (_bitmaps.Length > 0)
            {
                specific.Add(new("bitmaps", _bitmaps.Select(b => (IReadOnlyList<KeyValuePair<string, object>>)
                [
                    new("flags", (IReadOnlyList<object>)[.. new[] { (b.InUse, "in-use"), (b.Auto, "auto") }.Where(f => f.Item1).Select(f => f.Item2)]),
                    new("name", b.Name),
                    new("granularity", b.Granularity),
                ]).ToList()));
            }

            specific.Add(new("refcount-bits", (long)info.RefcountBits));
            if (info.Version >= 3)
            {
                specific.Add(new("corrupt", info.Corrupt));
                specific.Add(new("extended-l2", info.ExtendedL2));
            }

            return new ImageFormatInfo { ClusterSize = info.ClusterSize, Dirty = info.Dirty, Specific = specific };
        }
    }
}
