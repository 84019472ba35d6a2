using Strata.TestKit;

namespace Strata.Fuzz.Tests;

/// <summary>
/// The repository's fuzz folder: per target a seed corpus (corpus/), the crashes found and fixed
/// (crashes/, replayed by every test run) and the crashes found and not fixed yet (pending/).
/// </summary>
public static class FuzzFolder
{
    public static string Root { get; } = Path.Combine(Repository.Root, "fuzz");

    /// <summary>The build configuration of these tests (Release or Debug), which run.sh builds and runs the driver in.</summary>
    public static string Configuration { get; } = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    /// <summary>The driver as built next to these tests: uninstrumented, for replaying inputs in a process of their own.</summary>
    public static string Driver { get; } = Path.Combine(AppContext.BaseDirectory, "Strata.Fuzz.dll");

    /// <summary>The inputs of one of a target's folders, in name order; dot files (placeholders) are not inputs.</summary>
    public static IReadOnlyList<string> Inputs(string target, string folder)
    {
        string path = Path.Combine(Root, target, folder);
        return Directory.Exists(path)
            ? [.. Directory.GetFiles(path).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal)]
            : [];
    }
}
