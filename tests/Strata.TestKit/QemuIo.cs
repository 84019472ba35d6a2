namespace Strata.TestKit;

/// <summary>qemu-io as the oracle that writes and reads images.</summary>
public static class QemuIo
{
    /// <summary>Runs qemu-io commands (each a -c) on an image of a known format.</summary>
    public static ProcessResult Run(string file, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (string c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(file);
        return Processes.Run("qemu-io", args);
    }

    /// <summary>As <see cref="Run"/>, failing with the whole story unless qemu-io exits 0 and prints no error (it exits 0 after a failed command).</summary>
    public static ProcessResult Ok(string file, string format, params string[] commands)
    {
        var result = Run(file, format, commands);
        if (result.ExitCode != 0 || result.Stdout.Contains("error", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"qemu-io failed:\n{result}");
        }

        return result;
    }
}
