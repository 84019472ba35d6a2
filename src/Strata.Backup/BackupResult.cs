namespace Strata.Backup;

/// <summary>What a backup made.</summary>
/// <param name="Set">The set with the new point.</param>
/// <param name="Manifest">The new point.</param>
/// <param name="Removed">What a run that died had left and this one removed.</param>
/// <param name="BytesCopied">The bytes the copy planned to write (data and zero runs).</param>
public sealed record BackupResult(BackupSet Set, BackupManifest Manifest, IReadOnlyList<string> Removed, long BytesCopied)
{
    /// <summary>The bytes the chunk hashes read back from the new chain (an incremental with leaves: the leaves it copied).</summary>
    public long BytesHashed { get; init; }

    /// <summary>
    /// One line when this run met a point an interrupted run had staged for an S3 store: it finished
    /// that point (then <see cref="Manifest"/> is that point and the run made no other) or says why it could not.
    /// </summary>
    public string? Resume { get; init; }

    /// <summary>Chunks an incremental read whole because the previous point's leaf file did not vouch for their leaves.</summary>
    public int ChunksReadWhole { get; init; }
}
