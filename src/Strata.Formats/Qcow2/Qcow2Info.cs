namespace Strata.Formats.Qcow2;

/// <summary>What <c>qemu-img info</c> shows of a qcow2 image ("Format specific information").</summary>
public sealed record Qcow2Info
{
    public required int Version { get; init; }

    /// <summary>"1.1" for version 3, "0.10" for version 2.</summary>
    public string Compat => Version >= 3 ? "1.1" : "0.10";

    public required int ClusterSize { get; init; }

    public required int RefcountBits { get; init; }

    public required bool LazyRefcounts { get; init; }

    public required bool Corrupt { get; init; }

    public required bool Dirty { get; init; }

    public required string CompressionType { get; init; }

    public bool ExtendedL2 { get; init; }

    public string? BackingFile { get; init; }

    public string? BackingFormat { get; init; }
}
