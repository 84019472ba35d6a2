using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Strata.Backup;

/// <summary>How manifests are spelled on disk: kebab-case names as QEMU's JSON, enums as words, indented.</summary>
public static class ManifestJson
{
    public static byte[] Serialize(BackupManifest manifest) => JsonSerializer.SerializeToUtf8Bytes(manifest, ManifestJsonContext.Default.BackupManifest);

    public static byte[] Serialize(DriveJournal journal) => JsonSerializer.SerializeToUtf8Bytes(journal, ManifestJsonContext.Default.DriveJournal);

    /// <summary>Parses a live backup's journal (SET/work/drive.json); one line says what is wrong with a bad one.</summary>
    public static DriveJournal ParseJournal(ReadOnlySpan<byte> json, string description)
    {
        var journal = Deserialize(json, ManifestJsonContext.Default.DriveJournal, description, "a live backup's journal");
        return journal.Version == DriveJournal.CurrentVersion
            ? journal
            : throw new BackupException($"{description}: unsupported journal version {journal.Version}");
    }

    /// <summary>Parses and checks a manifest; one line says what is wrong with a bad one.</summary>
    public static BackupManifest Parse(ReadOnlySpan<byte> json, string description)
    {
        var manifest = Deserialize(json, ManifestJsonContext.Default.BackupManifest, description, "a backup manifest");
        Check(manifest, description);
        return manifest;
    }

    private static T Deserialize<T>(ReadOnlySpan<byte> json, JsonTypeInfo<T> type, string description, string what)
    {
        try
        {
            return JsonSerializer.Deserialize(json, type) ?? throw new BackupException($"{description}: not {what} (null)");
        }
        catch (JsonException e)
        {
            throw new BackupException($"{description}: not {what} ({e.Message})");
        }
    }

    private static void Check(BackupManifest m, string description)
    {
        string? problem =
            m.Version is not (BackupManifest.VersionWithoutLeaves or BackupManifest.CurrentVersion) ? $"unsupported manifest version {m.Version}"
            : (m.Version == BackupManifest.CurrentVersion) != m.LeafSize.HasValue ? $"a version {m.Version} manifest {(m.LeafSize.HasValue ? "with" : "without")} a leaf size"
            : m.LeafSize is { } leaf && (leaf <= 0 || m.ChunkSize % leaf != 0) ? "the leaf size must be positive and divide the chunk size"
            : m.Size < 0 ? "negative disk size"
            : m.ChunkSize <= 0 ? "chunk size must be positive"
            : m.Chunks.Count != BackupManifest.ChunkCount(m.Size, m.ChunkSize) ? $"{m.Chunks.Count} chunk hashes for a disk of {m.Size} bytes in chunks of {m.ChunkSize}"
            : m.Chunks.Any(c => c is not { Length: 64 } || !c.All(char.IsAsciiHexDigitLower)) ? "a chunk hash is not 64 lowercase hex digits"
            : m.Image.Length == 0 || Path.GetFileName(m.Image) != m.Image ? $"image '{m.Image}' is not a file name in the set"
            : m.Kind == BackupKind.Incremental && m.Backing is null ? "an incremental point without a backing image"
            : m.Extents.Any(e => e.Offset < 0 || e.Length <= 0 || e.Offset > m.Size - e.Length) ? "an extent outside the disk"
            : null;
        if (problem is not null)
        {
            throw new BackupException($"{description}: {problem}");
        }
    }
}
