namespace Strata.Formats.Qcow2;

/// <summary>What <c>qemu-img create -f qcow2 -o …</c> can set (docs/interop/qcow2.txt, "Header").</summary>
public sealed record Qcow2CreateOptions
{
    public required long Size { get; init; }

    /// <summary>A power of two from 512 B to 2 MiB.</summary>
    public int ClusterSize { get; init; } = 65536;

    /// <summary>"1.1" (version 3) or "0.10" (version 2).</summary>
    public string Compat { get; init; } = "1.1";

    /// <summary>A power of two from 1 to 64; version 2 allows only 16.</summary>
    public int RefcountBits { get; init; } = 16;

    public bool LazyRefcounts { get; init; }

    /// <summary>Recorded as given (relative names resolve against the image's folder).</summary>
    public string? BackingFile { get; init; }

    public string? BackingFormat { get; init; }

    /// <summary>"zlib" or "zstd".</summary>
    public string CompressionType { get; init; } = "zlib";
}
