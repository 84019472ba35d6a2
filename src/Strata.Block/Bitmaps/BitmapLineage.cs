namespace Strata.Block.Bitmaps;

/// <summary>
/// A stored bitmap's tracking lineage (docs/bitmaps.md, "Persistence"): within one lineage the
/// stored bits hold every write to the image since the lineage began, across crashes and restarts;
/// anything that breaks that (a clear, a gap in tracking nobody can vouch for) begins a new one.
/// </summary>
/// <param name="Id">The lineage's random id, as 32 lowercase hex digits.</param>
/// <param name="Began">Why it began, for messages: "the bitmap was cleared", …</param>
/// <param name="ImageChanged">
/// Set when tracking last stopped at a drive's close and an image file has changed since (said in a
/// few words): the bits then miss what was written while nothing tracked.
/// </param>
public sealed record BitmapLineage(string Id, string Began, string? ImageChanged);
