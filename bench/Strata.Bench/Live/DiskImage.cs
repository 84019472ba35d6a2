namespace Strata.Bench.Live;

/// <summary>The image a server opens: a raw file, or a qcow2 overlay over the raw <paramref name="Backing"/>.</summary>
internal sealed record DiskImage(string Path, string Format, string? Backing = null);
