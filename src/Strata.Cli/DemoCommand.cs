using System.CommandLine;
using Strata.Block;
using Strata.Cli.Demo;

namespace Strata.Cli;

/// <summary>`strata demo`: the whole workflow, end to end, on local files.</summary>
public static class DemoCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var dir = new Option<string?>("--dir") { Description = "work in this folder and keep it (default: a temporary folder, removed at the end)" };
        var size = new Option<int>("--size-mib") { Description = "size of the demo disk in MiB", DefaultValueFactory = _ => 64 };
        var seed = new Option<int>("--seed") { Description = "seed of the built-in guest's writes", DefaultValueFactory = _ => Environment.TickCount };
        var offline = new Option<bool>("--offline") { Description = "run the offline image workflow instead (img create, overlay, img commit), no daemon" };
        var command = new Command("demo", """
            Runs the whole Strata workflow on local files and shows each step with its timing: creates a
            disk, serves it over NBD, starts a built-in guest that keeps writing, takes a live snapshot,
            checks the snapshot is frozen and consistent, merges it back live, checks nothing was lost.
            Exit status: 0 every check passed, 1 a check failed or a step could not run.
            """)
        {
            dir, size, seed, offline,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            string? keep = result.GetValue(dir);
            string folder = keep ?? Directory.CreateTempSubdirectory("strata-demo-").FullName;
            Directory.CreateDirectory(folder);
            int useSeed = result.GetValue(seed);
            try
            {
                if (result.GetValue(offline))
                {
                    return await new DemoRunner(output, error, Path.GetFullPath(folder)).RunAsync();
                }

                output.WriteLine($"strata demo in {folder} (guest seed {useSeed})");
                return await new LiveDemo(output, Path.GetFullPath(folder), (long)result.GetValue(size) << 20, useSeed).RunAsync(cancellationToken);
            }
            catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException or Daemon.Control.QmpException or TimeoutException)
            {
                error.WriteLine($"strata demo: {e.Message}");
                return 1;
            }
            finally
            {
                if (keep is null)
                {
                    Directory.Delete(folder, recursive: true);
                }
            }
        });
        return command;
    }
}
