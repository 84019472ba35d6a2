namespace Strata.Block.Drivers;

/// <summary>
/// Names the image format the start of a file looks like, among all formats known, read or not
/// (null: none, raw). Probing uses it to refuse a file that looks like a format no driver reads
/// rather than take it for raw.
/// </summary>
public delegate string? FormatRecognizer(ReadOnlySpan<byte> start);
