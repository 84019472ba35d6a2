namespace Strata.TestKit;

/// <summary>The repository the tests were built from: its scripts (examples/, ceph/, guest/) are run by tests.</summary>
public static class Repository
{
    private static readonly Lazy<string> RootFolder = new(Find);

    /// <summary>The folder holding Strata.slnx, found above the test assembly.</summary>
    public static string Root => RootFolder.Value;

    /// <summary>The full path of <paramref name="relative"/> (e.g. "ceph/cluster.sh") in the repository.</summary>
    public static string File(string relative) => Path.Combine(Root, relative);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (System.IO.File.Exists(Path.Combine(dir.FullName, "Strata.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("the repository root (Strata.slnx) is not above the test assembly");
    }
}
