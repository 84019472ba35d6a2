namespace Strata.Block;

/// <summary>
/// A layer whose metadata can be checked for consistency and repaired (qemu-img check). Formats
/// with no metadata (raw) do not implement it.
/// </summary>
/// <remarks>
/// Contract: a repair needs the layer open read-write; a check alone changes nothing but may first
/// make the layer's cached metadata durable. The counts returned are those left after a repair.
/// </remarks>
public interface IImageCheck
{
    ValueTask<ImageCheckResult> CheckAsync(ImageRepair repair, CancellationToken cancellationToken = default);
}
