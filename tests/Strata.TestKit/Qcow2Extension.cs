namespace Strata.TestKit;

/// <summary>
/// A header extension as written on disk (qcow2.txt, "Header extensions"): type, length, data padded
/// to 8 bytes. <see cref="LengthOverride"/> writes a length that does not match the data (hostile).
/// </summary>
public sealed record Qcow2Extension(uint Type, byte[] Data, uint? LengthOverride = null);
