namespace Strata.Nbd.Protocol;

/// <summary>Error values on the wire (proto.md, "Error values"); the numbers are Linux's errno.</summary>
public enum NbdErrno : uint
{
    None = 0,
    PermissionDenied = 1,
    IoError = 5,
    OutOfMemory = 12,
    InvalidArgument = 22,
    NoSpace = 28,
    Overflow = 75,
    NotSupported = 95,
    Shutdown = 108,
}
