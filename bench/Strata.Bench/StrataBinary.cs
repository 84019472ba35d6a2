namespace Strata.Bench;

/// <summary>Where the strata CLI the benchmarks run lives.</summary>
internal static class StrataBinary
{
    /// <summary>An explicit path, else the apphost built next to this program, else its dll through dotnet.</summary>
    public static (string Program, string[] Prefix) Locate(string? explicitPath)
    {
        if (explicitPath is not null)
        {
            return (explicitPath, []);
        }

        string apphost = Path.Combine(AppContext.BaseDirectory, "strata");
        if (File.Exists(apphost))
        {
            return (apphost, []);
        }

        return ("dotnet", [Path.Combine(AppContext.BaseDirectory, "strata.dll")]);
    }
}
