using Strata.Block.Drivers;
using Strata.Formats.DirtyBitmaps;
using Strata.Formats.Qcow2;
using Strata.Formats.Raw;
using Strata.Formats.Rbd;

namespace Strata.Formats;

/// <summary>
/// The drivers Strata ships, the one list of the formats and protocols it reads: a new driver lives
/// in its own folder and is added here with one line. Listings (help, errors) show them in this order.
/// </summary>
public static class StandardDrivers
{
    /// <summary>Immutable; a caller that needs more drivers builds on it with <see cref="DriverRegistry.With(IFormatDriver)"/>.</summary>
    public static DriverRegistry Registry { get; } = new(
        [
            new RawFormatDriver(),
            new Qcow2FormatDriver(),
            new DirtyBitmapFormatDriver(),
        ],
        [
            new FileProtocolDriver(),
            new RbdProtocolDriver(),
        ],
        ImageSignatures.Detect);
}
