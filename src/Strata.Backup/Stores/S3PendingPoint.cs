using System.Security.Cryptography;
using System.Text.Json;

namespace Strata.Backup.Stores;

/// <summary>
/// A point a writer staged completely and began to upload: <c>pending/</c> in the writer's staging
/// folder holds its image, its manifest and the <see cref="PendingUpload"/> record. The record is
/// written last (atomically), after the files are in place and the upload has an id; a folder without
/// one is what a writer that died before that left, and is only removed.
/// </summary>
internal sealed class S3PendingPoint
{
    private const string FolderName = "pending";
    private const string RecordName = "upload.json";

    private S3PendingPoint(string folder, PendingUpload record)
    {
        Folder = folder;
        Record = record;
    }

    public string Folder { get; }

    public PendingUpload Record { get; }

    public string ImagePath => Path.Combine(Folder, BackupSet.ImageName(Record.Point));

    public string ManifestPath => Path.Combine(Folder, BackupSet.ManifestName(Record.Point));

    /// <summary>Whether <paramref name="name"/>, an entry of a staging folder, is the pending point's folder.</summary>
    public static bool IsFolder(string name) => name == FolderName;

    /// <summary>Whether a staging folder holds a point whose upload may be continued (a record is there).</summary>
    public static bool IsRecorded(string staging) => File.Exists(Path.Combine(staging, FolderName, RecordName));

    /// <summary>
    /// Moves point <paramref name="point"/>'s image and manifest, just made in <paramref name="staging"/>
    /// by the writer, into the pending folder; returns their new paths.
    /// </summary>
    public static (string Image, string Manifest) Stage(string staging, int point)
    {
        string folder = Path.Combine(staging, FolderName);
        Discard(staging);
        Directory.CreateDirectory(folder);
        string image = Path.Combine(folder, BackupSet.ImageName(point));
        string manifest = Path.Combine(folder, BackupSet.ManifestName(point));
        File.Move(Path.Combine(staging, BackupSet.ImageName(point)), image);
        File.Move(Path.Combine(staging, BackupSet.ManifestName(point)), manifest);
        return (image, manifest);
    }

    /// <summary>Records the upload of the staged point: from now on the next writer can continue it.</summary>
    public static S3PendingPoint Commit(string staging, PendingUpload record)
    {
        string folder = Path.Combine(staging, FolderName);
        AtomicFile.Write(Path.Combine(folder, RecordName), JsonSerializer.SerializeToUtf8Bytes(record, PendingUploadJsonContext.Default.PendingUpload));
        return new S3PendingPoint(folder, record);
    }

    /// <summary>What a writer that stopped left in <paramref name="staging"/>: a point with its record, or null and why not (null too when nothing is there).</summary>
    public static (S3PendingPoint? Point, string? Problem) Read(string staging)
    {
        string folder = Path.Combine(staging, FolderName);
        if (!Directory.Exists(folder))
        {
            return (null, null);
        }

        try
        {
            var record = JsonSerializer.Deserialize(File.ReadAllBytes(Path.Combine(folder, RecordName)), PendingUploadJsonContext.Default.PendingUpload);
            return record is null ? (null, "its record is empty") : (new S3PendingPoint(folder, record), null);
        }
        catch (FileNotFoundException)
        {
            return (null, null); // stopped before its upload was recorded: nothing to continue
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return (null, $"its record cannot be read ({e.Message})");
        }
    }

    /// <summary>Removes the pending folder of <paramref name="staging"/>, if any.</summary>
    public static void Discard(string staging)
    {
        string folder = Path.Combine(staging, FolderName);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The SHA-256 of a manifest's bytes, in hex: what ties a pending point to the set's last point.</summary>
    public static string Fingerprint(byte[] manifest) => Convert.ToHexStringLower(SHA256.HashData(manifest));

    /// <summary>The staged image's length and last write, as the record keeps them.</summary>
    public static (long Size, long Modified) Stat(string path)
    {
        var info = new FileInfo(path);
        return (info.Length, info.LastWriteTimeUtc.Ticks);
    }

    /// <summary>
    /// Why this point cannot be finished as the next point of <paramref name="set"/> at
    /// <paramref name="location"/> (whose last manifest's bytes are <paramref name="lastManifest"/>);
    /// null when it can: the same set, no point added meanwhile, its last manifest as it was, and the
    /// staged files there and unchanged.
    /// </summary>
    public string? Mismatch(S3Location location, BackupSet set, byte[]? lastManifest)
    {
        var r = Record;
        long parts = r.PartSize > 0 ? (r.Size + r.PartSize - 1) / r.PartSize : 0;
        return r.Set != location.ToString() ? $"it was staged for {r.Set}"
            : r.Key != location.Key(BackupSet.ImageName(r.Point)) ? $"its record names the key '{r.Key}'"
            : r.Point != set.Points.Count ? $"it was to be point {r.Point}, and the set has {set.Points.Count} point(s) now"
            : r.BaseSha256 != (lastManifest is null ? null : Fingerprint(lastManifest)) ? "the set's last point changed since it was staged"
            : r.UploadId is not null && (r.PartSize < S3MultipartUpload.MinPartSize || parts > S3MultipartUpload.MaxParts) ? $"its record has a part size of {r.PartSize} bytes"
            : !File.Exists(ImagePath) ? "its staged image is missing"
            : Stat(ImagePath) != (r.Size, r.Modified) ? "its staged image was changed or replaced since"
            : !File.Exists(ManifestPath) ? "its staged manifest is missing"
            : Fingerprint(File.ReadAllBytes(ManifestPath)) != r.ManifestSha256 ? "its staged manifest was changed since"
            : null;
    }

    /// <summary>The staged manifest, checked as a manifest read from a set.</summary>
    public BackupManifest ReadManifest() => ManifestJson.Parse(File.ReadAllBytes(ManifestPath), ManifestPath);
}
