namespace Strata.Block.Drivers;

/// <summary>What a format driver is asked to open, beyond its file.</summary>
public sealed record FormatOpenRequest
{
    public required ImageLocator Locator { get; init; }

    public bool ReadOnly { get; init; }

    /// <summary>Open read-write for a repair (<c>check -r</c>): an image marked corrupt is accepted.</summary>
    public bool Repair { get; init; }

    /// <summary>The format was guessed by probing, not given: a raw image stays guarded against looking like a format.</summary>
    public bool Probed { get; init; }

    /// <summary>Opens the backing image a layer records; null leaves the backing chain closed.</summary>
    public BackingOpener? OpenBacking { get; init; }
}
