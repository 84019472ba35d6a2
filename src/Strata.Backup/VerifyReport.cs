namespace Strata.Backup;

/// <summary>What <see cref="BackupVerifier"/> found for one point: the mismatching chunks, or why the point could not be read at all.</summary>
public sealed record VerifyReport(int Point, IReadOnlyList<ChunkMismatch> Mismatches, string? Problem)
{
    public bool Ok => Problem is null && Mismatches.Count == 0;
}
