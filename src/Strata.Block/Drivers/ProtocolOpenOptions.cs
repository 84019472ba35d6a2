namespace Strata.Block.Drivers;

/// <summary>How a protocol driver opens an image's bytes.</summary>
public sealed record ProtocolOpenOptions
{
    public bool ReadOnly { get; init; }

    /// <summary>cache=none: bypass the host's cache (O_DIRECT for a file); drivers without one ignore it.</summary>
    public bool Direct { get; init; }
}
