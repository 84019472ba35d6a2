namespace Strata.Backup;

/// <summary>What the copy and the hashing of a new point gave: every chunk's hash, the bytes copied and read back, the chunks read whole.</summary>
internal sealed record HashedPoint(IReadOnlyList<string> Chunks, long Copied, long BytesRead, int ChunksReadWhole);
