namespace Strata.Formats;

public sealed record ImageOpenOptions
{
    /// <summary>"raw" or "qcow2"; null probes the file (qcow2 magic, else raw).</summary>
    public string? Format { get; init; }

    public bool ReadOnly { get; init; }

    /// <summary>
    /// Open read-write for <c>check -r</c>: a qcow2 image marked corrupt is accepted (a repair that
    /// leaves no corruption clears the mark).
    /// </summary>
    public bool Repair { get; init; }

    /// <summary>Open the backing chain (read-only) below a qcow2 image.</summary>
    public bool OpenBacking { get; init; } = true;

    /// <summary>cache=none: bypass the page cache with O_DIRECT.</summary>
    public bool Direct { get; init; }

    /// <summary>Longest backing chain accepted; deeper chains (or loops) are refused.</summary>
    public int MaxChainDepth { get; init; } = 64;
}
