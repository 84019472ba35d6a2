namespace Strata.Block.Graph;

/// <summary>How a drive asks for an image to be opened.</summary>
public sealed record LayerOpenOptions
{
    /// <summary>The image's format; null: probed (and a probed raw image stays guarded against looking like a format).</summary>
    public string? Format { get; init; }

    /// <summary>Open the top read-only; layers below the top are always opened read-only.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Bypass the host's page cache (cache=none), for every layer.</summary>
    public bool Direct { get; init; }
}
