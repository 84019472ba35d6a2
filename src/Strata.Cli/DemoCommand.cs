using System.CommandLine;
using Strata.Cli.Demo;

namespace Strata.Cli;

/// <summary>`strata demo`: the whole workflow, end to end, on local files.</summary>
public static class DemoCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var dir = new Option<string?>("--dir")
        {
            Description = "Work in this folder and keep the images (default: a temporary folder, deleted afterwards).",
        };
        var command = new Command("demo", "Run the whole Strata workflow on local files and show each step (exit 0 on success, 1 on any failed check).")
        {
            dir,
        };
        command.SetAction(parseResult => RunAsync(parseResult.GetValue(dir), output, error).GetAwaiter().GetResult());
        return command;
    }

    private static async Task<int> RunAsync(string? dir, TextWriter output, TextWriter error)
    {
        bool temporary = dir is null;
        string folder = dir ?? Path.Combine(Path.GetTempPath(), "strata-demo-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Directory.CreateDirectory(folder);
            return await new DemoRunner(output, error, Path.GetFullPath(folder)).RunAsync();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"strata demo: {e.Message}");
            return 1;
        }
        finally
        {
            if (temporary && Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }
}
