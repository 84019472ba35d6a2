namespace Strata.Block;

/// <summary>
/// A drive's I/O status (QEMU's BlockDeviceIoStatus, query-block "io-status"): set by the first
/// failure that stopped the drive, cleared when it is resumed.
/// </summary>
public enum IoStatus
{
    Ok,

    /// <summary>A request failed and the drive stopped.</summary>
    Failed,

    /// <summary>A request failed for lack of space and the drive stopped.</summary>
    NoSpace,
}
