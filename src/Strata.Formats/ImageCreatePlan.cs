using Strata.Block.Drivers;

namespace Strata.Formats;

/// <summary>
/// A validated image creation: what <see cref="ImageCreator.CreateAsync(ImageCreatePlan, Raw.FileCreation, CancellationToken)"/>
/// will write, with every setting the image gets, so a caller can say what it is about to do.
/// </summary>
public sealed record ImageCreatePlan
{
    public required string Path { get; init; }

    /// <summary>A format of <see cref="Drivers"/>.</summary>
    public required string Format { get; init; }

    public required long Size { get; init; }

    /// <summary>The format driver's part: its settings and how it writes them.</summary>
    public required FormatCreatePlan Creation { get; init; }

    /// <summary>The <c>-o</c> option names the request gave (the rest of <see cref="FormatCreatePlan.Settings"/> are defaults).</summary>
    public IReadOnlySet<string> GivenOptions { get; init; } = new HashSet<string>();

    /// <summary>The drivers that planned it, and that will write it.</summary>
    public DriverRegistry Drivers { get; init; } = StandardDrivers.Registry;
}
