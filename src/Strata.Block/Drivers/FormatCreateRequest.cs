namespace Strata.Block.Drivers;

/// <summary>A new image, once its size and backing file are known.</summary>
public sealed record FormatCreateRequest
{
    public required long Size { get; init; }

    /// <summary>The backing file's name as it will be recorded; null: none.</summary>
    public string? BackingFile { get; init; }

    /// <summary>The backing file's format (given, or probed once by the creator); null when there is no backing file.</summary>
    public string? BackingFormat { get; init; }

    /// <summary>The format's own <c>-o</c> options, as given, in order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Options { get; init; } = [];
}
