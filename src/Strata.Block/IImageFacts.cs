namespace Strata.Block;

/// <summary>A layer that describes its image format for <c>info</c> (<see cref="ImageFormatInfo"/>).</summary>
public interface IImageFacts
{
    /// <summary>The header's facts as the layer holds them now (no I/O).</summary>
    ImageFormatInfo FormatInfo { get; }
}
