using Strata.Formats.Qcow2;

namespace Strata.Formats;

/// <summary>
/// A validated image creation: what <see cref="ImageCreator.CreateAsync(ImageCreatePlan, Raw.FileCreation, CancellationToken)"/>
/// will write, and the line qemu-img prints before writing it ("Formatting 'foo.img', fmt=raw size=…").
/// </summary>
public sealed record ImageCreatePlan
{
    public required string Path { get; init; }

    /// <summary>"raw" or "qcow2".</summary>
    public required string Format { get; init; }

    public required long Size { get; init; }

    /// <summary>The qcow2 header fields; null for raw.</summary>
    public Qcow2CreateOptions? Qcow2 { get; init; }

    /// <summary>The options as qemu-img lists them after "Formatting".</summary>
    public required string Description { get; init; }
}
