namespace Strata.Block.Copy;

/// <summary>
/// The extents a copy will visit, in disk order, and how many bytes they cover: what the block status
/// walk found to need a write. A copy that runs later looks at each extent again (see <see cref="BlockCopy"/>).
/// </summary>
public sealed class CopyPlan
{
    internal CopyPlan(IReadOnlyList<CopyRange> extents, IReadOnlyList<CopyRange> zeroesLeftOut)
    {
        Extents = extents;
        ZeroesLeftOut = zeroesLeftOut;
        TotalBytes = extents.Sum(e => e.Length);
    }

    public IReadOnlyList<CopyRange> Extents { get; }

    public long TotalBytes { get; }

    /// <summary>
    /// The runs left out because they read as zeroes over a target that does, in disk order: kept only
    /// for a copy with an <see cref="BlockCopyOptions.Observer"/>, which hears them when the copy runs.
    /// </summary>
    internal IReadOnlyList<CopyRange> ZeroesLeftOut { get; }

    /// <summary>The extents cut into pieces of at most <paramref name="chunkSize"/> bytes.</summary>
    internal List<CopyRange> Chunks(int chunkSize)
    {
        var chunks = new List<CopyRange>();
        foreach (var extent in Extents)
        {
            for (long offset = extent.Offset; offset < extent.End; offset += chunkSize)
            {
                chunks.Add(new CopyRange(offset, Math.Min(chunkSize, extent.End - offset)));
            }
        }

        return chunks;
    }
}
