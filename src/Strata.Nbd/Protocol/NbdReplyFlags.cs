namespace Strata.Nbd.Protocol;

/// <summary>Structured reply chunk flags.</summary>
[Flags]
public enum NbdReplyFlags : ushort
{
    None = 0,

    /// <summary>The last chunk of a reply.</summary>
    Done = 1,
}
