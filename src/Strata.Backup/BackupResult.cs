namespace Strata.Backup;

/// <summary>What a backup made.</summary>
/// <param name="Set">The set with the new point.</param>
/// <param name="Manifest">The new point.</param>
/// <param name="Removed">What a run that died had left and this one removed.</param>
/// <param name="BytesCopied">The bytes the copy planned to write (data and zero runs).</param>
public sealed record BackupResult(BackupSet Set, BackupManifest Manifest, IReadOnlyList<string> Removed, long BytesCopied);
