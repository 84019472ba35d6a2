namespace Strata.Block;

[Flags]
public enum NodeCapabilities
{
    None = 0,
    ReadOnly = 1,
    Fua = 2,
    Discard = 4,
    WriteZeroes = 8,

    /// <summary>Write-zeroes with <see cref="ZeroFlags.NoFallback"/> can succeed (NBD FAST_ZERO).</summary>
    FastZero = 16,

    /// <summary>Several connections may write at once and a flush on one covers all (NBD CAN_MULTI_CONN).</summary>
    MultiConnection = 32,

    Resize = 64,
}
