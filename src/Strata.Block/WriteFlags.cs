namespace Strata.Block;

[Flags]
public enum WriteFlags
{
    None = 0,

    /// <summary>Force unit access: the write is durable before it completes.</summary>
    Fua = 1,
}
