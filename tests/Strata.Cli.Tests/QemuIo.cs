using Strata.TestKit;

namespace Strata.Cli.Tests;

/// <summary>qemu-io as the oracle that writes and reads images.</summary>
public static class QemuIo
{
    /// <summary>qemu-io commands (each a -c) on an image of a known format; fails unless all succeed.</summary>
    public static void Run(string file, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (string c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(file);
        var result = Processes.Run("qemu-io", args);
        Assert.True(result.ExitCode == 0 && !result.Stdout.Contains("error", StringComparison.OrdinalIgnoreCase), $"{result}");
    }
}
