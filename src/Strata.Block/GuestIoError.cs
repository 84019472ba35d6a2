namespace Strata.Block;

/// <summary>
/// A guest request failed in a drive's layers and its error policy acted (QEMU's BLOCK_IO_ERROR):
/// which side failed, whether the drive stopped or reported the error, and why.
/// </summary>
/// <param name="Write">True for a write, write-zeroes, discard or flush; false for a read.</param>
/// <param name="Stopped">True when the request is held and the drive stopped; false when the request fails with the error.</param>
/// <param name="NoSpace">True when the layers ran out of space.</param>
/// <param name="Message">The layers' one-line error.</param>
public sealed record GuestIoError(bool Write, bool Stopped, bool NoSpace, string Message);
