namespace Strata.Block;

[Flags]
public enum ZeroFlags
{
    None = 0,

    /// <summary>The range may be deallocated (a hole) as long as it reads back as zeroes.</summary>
    MayUnmap = 1,

    /// <summary>Fail with <see cref="BlockError.NotSupported"/> rather than fall back to writing zero bytes.</summary>
    NoFallback = 2,

    /// <summary>Durable before completion, as <see cref="WriteFlags.Fua"/>.</summary>
    Fua = 4,
}
