namespace Strata.Nbd.Protocol;

/// <summary>Request types of the transmission phase (proto.md, "Request types").</summary>
public enum NbdCommand : ushort
{
    Read = 0,
    Write = 1,
    Disconnect = 2,
    Flush = 3,
    Trim = 4,
    Cache = 5,
    WriteZeroes = 6,
    BlockStatus = 7,
    Resize = 8,
}
