namespace Strata.Backup;

/// <summary>What a backup will make: a full point, or an incremental one on the set's last point; and, for a full one, why no incremental.</summary>
/// <param name="Kind">Full or incremental.</param>
/// <param name="Fallback">Why a bitmap that was given is not used (null when it is, or when none was given).</param>
public sealed record BackupPlan(BackupKind Kind, string? Fallback)
{
    public static BackupPlan Incremental { get; } = new(BackupKind.Incremental, null);

    public static BackupPlan Full(string? why) => new(BackupKind.Full, why);
}
