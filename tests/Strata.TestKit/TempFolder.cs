namespace Strata.TestKit;

/// <summary>
/// A fresh folder under <see cref="Path.GetTempPath"/> for one test, deleted with everything in it on
/// dispose. Use with <c>using var dir = new TempFolder();</c>. The name is short so that unix socket
/// paths inside it fit in sun_path (108 bytes).
/// </summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder(string? prefix = null)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"strata-{prefix ?? "test"}-{Guid.NewGuid().ToString("N")[..12]}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>The full path of <paramref name="name"/> inside the folder (not created).</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Gone already, or a process a test started still holds a file for a moment: it is in temp.
        }
    }
}
