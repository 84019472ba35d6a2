namespace Strata.Cli.Img;

/// <summary>One line of <c>map</c>: a run of guest bytes and which layer, if any, stores them where.</summary>
public readonly record struct MapEntry(long Start, long Length, int Depth, bool Present, bool Zero, bool Data, long? Offset, string? FileName)
{
    public long End => Start + Length;

    /// <summary>qemu-img's merge rule: same layer and kind, and host offsets that continue each other.</summary>
    public bool Continues(MapEntry previous) => previous.End == Start && previous.Depth == Depth && previous.Present == Present
        && previous.Zero == Zero && previous.Data == Data && previous.FileName == FileName
        && (previous.Offset is { } o ? Offset == o + previous.Length : Offset is null);
}
