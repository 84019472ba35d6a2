namespace Strata.Formats.DirtyBitmaps;

/// <summary>How messages say why a lineage began.</summary>
internal static class DirtyBitmapLineageStarts
{
    public static string Describe(this DirtyBitmapLineageStart start) => start switch
    {
        DirtyBitmapLineageStart.None => "the file comes from a version that kept no lineage",
        DirtyBitmapLineageStart.Created => "the file was created",
        DirtyBitmapLineageStart.Cleared => "the bitmap was cleared",
        DirtyBitmapLineageStart.ImageChanged => "the image changed while nothing tracked it",
        DirtyBitmapLineageStart.Unvouched => "tracking began again with no proof that the image was unchanged since it stopped (it stopped while the drive went on, or began on a drive already serving)",
        DirtyBitmapLineageStart.ResumedLate => "tracking resumed after a crash on a drive that was already serving",
        _ => $"reason {(uint)start}",
    };
}
