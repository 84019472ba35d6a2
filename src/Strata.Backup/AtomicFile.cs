namespace Strata.Backup;

/// <summary>
/// A small file replaced all or nothing: written to a temp file, fsynced, renamed over the name, and
/// the folder fsynced (POSIX rename(2): only then does the new name survive a crash).
/// </summary>
internal static class AtomicFile
{
    public const string TempExtension = ".tmp";

    /// <param name="overwrite">False: the name must not exist yet (a point's manifest is written once).</param>
    public static void Write(string path, byte[] content, bool overwrite = true)
    {
        string temp = path + TempExtension;
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(content);
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite);
        FolderSync.Flush(Path.GetDirectoryName(path)!);
    }
}
