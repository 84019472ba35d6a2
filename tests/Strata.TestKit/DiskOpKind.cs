namespace Strata.TestKit;

public enum DiskOpKind
{
    Write,
    WriteZeroes,

    /// <summary>Write-zeroes with <c>MayUnmap</c>: reads zero, may deallocate.</summary>
    WriteZeroesUnmap,

    /// <summary>Content unspecified afterwards (old bytes, zeroes or the backing's bytes).</summary>
    Discard,
    Flush,
}
