namespace Strata.Block.Bitmaps;

/// <summary>
/// The files of a drive's image chain (top first), given to a bitmap store at the two moments the
/// drive can vouch that no write reaches them unseen: at the save of the drive's close, after its
/// last flush, and when tracking begins before the drive has served any request (the daemon's
/// start). A store that records what these files were at the close can tell at the next start
/// whether anything wrote them while nothing tracked them (docs/bitmaps.md, "Persistence").
/// </summary>
/// <param name="Files">The layers' file names, top first.</param>
public sealed record QuietImage(IReadOnlyList<string> Files)
{
    /// <summary>The chain below <paramref name="top"/>; null when a layer has no file (nothing to vouch with).</summary>
    public static QuietImage? Of(IBlockNode top)
    {
        var files = new List<string>();
        foreach (var layer in top.Layers())
        {
            if (layer.FileName is not { } file)
            {
                return null;
            }

            files.Add(file);
        }

        return new QuietImage(files);
    }
}
