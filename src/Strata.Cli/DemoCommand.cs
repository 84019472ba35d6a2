using System.CommandLine;

namespace Strata.Cli;

/// <summary>`strata demo`: the whole workflow, end to end, on local files.</summary>
public static class DemoCommand
{
    public static Command Build() => new("demo", "Run the whole Strata workflow on local files and show each step.");
}
