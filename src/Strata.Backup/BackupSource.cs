namespace Strata.Backup;

/// <summary>Where a point's data came from: an image file read offline, or a drive of a running daemon (and its frozen image).</summary>
/// <param name="Image">The image read (for a drive: the frozen image the snapshot left).</param>
/// <param name="Drive">The drive's id, for a backup through the control socket.</param>
public sealed record BackupSource(string Image, string? Drive = null);
