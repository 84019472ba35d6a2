namespace Strata.Block;

/// <summary>
/// What a format says about one image beyond its size, for <c>info</c>: driver-neutral facts, and
/// the format's own fields by name (QEMU's "format-specific" data: names as its QAPI spells them,
/// values a string, a whole number, a bool, or a list of values or of objects, an object being a
/// list of such name-value pairs, as qcow2's "bitmaps"), in the order they are shown.
/// </summary>
public sealed record ImageFormatInfo
{
    /// <summary>The format's allocation unit, when it has one.</summary>
    public int? ClusterSize { get; init; }

    /// <summary>The image was not closed cleanly (its metadata may need repair before use).</summary>
    public bool Dirty { get; init; }

    public IReadOnlyList<KeyValuePair<string, object>> Specific { get; init; } = [];
}
