using System.Globalization;

namespace Strata.Backup;

/// <summary>
/// A backup set: a folder of points <c>NNNN.qcow2</c> + <c>NNNN.json</c> (docs/backup.md, "The set").
/// Point 0 is full; each later point's image is a full one or has the previous point's image as its
/// backing file, by relative name, so the folder can move and <c>qemu-img convert NNNN.qcow2</c>
/// restores the disk at that point.
/// </summary>
/// <remarks>
/// Invariant: a point is part of the set exactly when its manifest exists, and manifests exist for
/// 0..N-1 without a hole. A manifest is written last (temp file, fsync, rename, fsync of the folder),
/// after its image is flushed; anything of a higher number (an image, a temp manifest) is what a run
/// that died left behind, and the next run that adds a point removes it.
/// </remarks>
public sealed class BackupSet
{
    private const string ManifestExtension = ".json";
    private const string ImageExtension = ".qcow2";
    private const string TempExtension = AtomicFile.TempExtension;

    private BackupSet(string folder, IReadOnlyList<BackupManifest> points)
    {
        Folder = folder;
        Points = points;
    }

    /// <summary>The set's folder, a full path.</summary>
    public string Folder { get; }

    /// <summary>The points, in order: <c>Points[i].Point == i</c>.</summary>
    public IReadOnlyList<BackupManifest> Points { get; }

    public BackupManifest? Last => Points.Count > 0 ? Points[^1] : null;

    /// <summary>Opens the set in <paramref name="folder"/>; with <paramref name="create"/>, a missing folder is made (empty set).</summary>
    public static BackupSet Open(string folder, bool create = false)
    {
        ArgumentNullException.ThrowIfNull(folder);
        string full = Path.GetFullPath(folder);
        if (!Directory.Exists(full))
        {
            if (!create)
            {
                throw new BackupException($"{folder}: no such backup set");
            }

            Directory.CreateDirectory(full);
        }

        var points = new List<BackupManifest>();
        for (int i = 0; File.Exists(Path.Combine(full, ManifestName(i))); i++)
        {
            string path = Path.Combine(full, ManifestName(i));
            var manifest = ManifestJson.Parse(File.ReadAllBytes(path), path);
            if (manifest.Point != i || manifest.Image != ImageName(i))
            {
                throw new BackupException($"{path}: records point {manifest.Point} with image '{manifest.Image}', expected point {i} with '{ImageName(i)}'");
            }

            if (i == 0 ? manifest.Kind != BackupKind.Full : manifest.Size != points[^1].Size && manifest.Kind != BackupKind.Full)
            {
                throw new BackupException($"{path}: an incremental point needs a previous point of the same disk size");
            }

            points.Add(manifest);
        }

        return new BackupSet(full, points);
    }

    public static string ImageName(int point) => point.ToString("D4", CultureInfo.InvariantCulture) + ImageExtension;

    public static string ManifestName(int point) => point.ToString("D4", CultureInfo.InvariantCulture) + ManifestExtension;

    public string ImagePath(int point) => Path.Combine(Folder, ImageName(point));

    /// <summary>Point <paramref name="point"/>'s leaf digests (<see cref="LeafDigestFile"/>).</summary>
    internal string LeavesPath(int point) => Path.Combine(Folder, LeafDigestFile.Name(point));

    /// <summary>A point named on the command line: its number (3 or 0003), or <c>last</c>; null: the last.</summary>
    public BackupManifest Find(string? name)
    {
        if (Points.Count == 0)
        {
            throw new BackupException($"{Folder}: the backup set has no point yet");
        }

        if (name is null or "last")
        {
            return Points[^1];
        }

        string number = name.EndsWith(ImageExtension, StringComparison.Ordinal) || name.EndsWith(ManifestExtension, StringComparison.Ordinal)
            ? Path.GetFileNameWithoutExtension(name) : name;
        return int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out int point) && point < Points.Count
            ? Points[point]
            : throw new BackupException($"{name}: no such point (the set has points 0 to {Points.Count - 1})");
    }

    /// <summary>
    /// Removes what a run that died left: images, leaf files and temp files numbered past the last point.
    /// Returns the names removed.
    /// </summary>
    public IReadOnlyList<string> RemoveHalfMade()
    {
        var removed = new List<string>();
        foreach (string path in Directory.EnumerateFiles(Folder))
        {
            string name = Path.GetFileName(path);
            if (IsPastLast(name, ImageExtension) || IsPastLast(name, ManifestExtension + TempExtension)
                || IsPastLast(name, LeafDigestFile.Extension) || IsPastLast(name, LeafDigestFile.Extension + TempExtension))
            {
                File.Delete(path);
                removed.Add(name);
            }
        }

        removed.Sort(StringComparer.Ordinal);
        return removed;
    }

    /// <summary>Makes <paramref name="manifest"/> part of the set: temp file, fsync, rename, fsync of the folder.</summary>
    internal BackupSet Commit(BackupManifest manifest)
    {
        if (manifest.Point != Points.Count)
        {
            throw new BackupException($"point {manifest.Point} cannot follow point {Points.Count - 1}");
        }

        AtomicFile.Write(Path.Combine(Folder, ManifestName(manifest.Point)), ManifestJson.Serialize(manifest), overwrite: false);
        return new BackupSet(Folder, [.. Points, manifest]);
    }

    private bool IsPastLast(string name, string extension)
    {
        if (!name.EndsWith(extension, StringComparison.Ordinal))
        {
            return false;
        }

        string number = name[..^extension.Length];
        return number.Length == 4 && int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out int point) && point >= Points.Count;
    }
}
