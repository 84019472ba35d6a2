namespace Strata.Nbd.Protocol;

/// <summary>Command flags (proto.md, "Command flags").</summary>
[Flags]
public enum NbdCommandFlags : ushort
{
    None = 0,
    Fua = 1,
    NoHole = 2,
    DontFragment = 4,
    RequestOne = 8,
    FastZero = 16,
}
