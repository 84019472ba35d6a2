namespace Strata.Backup;

/// <summary>What a backup made.</summary>
/// <param name="Set">The set with the new point.</param>
/// <param name="Manifest">The new point.</param>
/// <param name="Removed">What a run that died had left and this one removed.</param>
/// <param name="BytesCopied">The bytes the copy planned to write (data and zero runs).</param>
public sealed record BackupResult(BackupSet Set, BackupManifest Manifest, IReadOnlyList<string> Removed, long BytesCopied)
{
    /// <summary>
    /// The bytes the chunk hashes read back from the new chain: with leaves, those of the leaves the
    /// copy did not cover whole (an extent starts or ends inside them; and, in a chunk the previous
    /// leaf file did not vouch for, the leaves outside the extents); without, every chunk hashed.
    /// </summary>
    public long BytesHashed { get; init; }

    /// <summary>
    /// One line when this run met a point an interrupted run had staged for an S3 store: it finished
    /// that point (then <see cref="Manifest"/> is that point and the run made no other) or says why it could not.
    /// </summary>
    public string? Resume { get; init; }

    /// <summary>Chunks of an incremental whose leaves the previous point's leaf file did not vouch for: every leaf the copy did not cover was read back.</summary>
    public int ChunksReadWhole { get; init; }
}
