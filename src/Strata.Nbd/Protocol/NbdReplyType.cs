namespace Strata.Nbd.Protocol;

/// <summary>Structured reply chunk types (proto.md, "Structured reply types").</summary>
public enum NbdReplyType : ushort
{
    None = 0,
    OffsetData = 1,
    OffsetHole = 2,
    BlockStatus = 5,
    Error = 32769,
    ErrorOffset = 32770,
}
