using System.Diagnostics;

namespace Strata.Agent;

/// <summary>
/// Runs the hook scripts of a folder, as qemu-ga's fsfreeze-hook does with its hook folder: every
/// executable file, in ordinal name order, with one argument, "freeze" before the file systems
/// freeze and "thaw" after they thaw (so a database can flush and hold, then resume). Each hook has
/// a time limit; one that outlives it is killed and counts as failed, because a hook that never
/// returns must not keep the guest from freezing or, worse, from thawing.
/// </summary>
internal sealed class HookRunner(string? folder, TimeSpan timeout, TextWriter log)
{
    /// <summary>Runs every hook with <paramref name="phase"/>; returns the first failure's description, or null.</summary>
    public string? Run(string phase)
    {
        if (folder is null || !Directory.Exists(folder))
        {
            return null;
        }

        string? failure = null;
        foreach (string hook in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
        {
            if ((File.GetUnixFileMode(hook) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
            {
                continue;
            }

            string? problem = RunOne(hook, phase);
            log.WriteLine($"strata-agent: hook {Path.GetFileName(hook)} {phase}: {problem ?? "ok"}");
            failure ??= problem is null ? null : $"hook {Path.GetFileName(hook)} {phase}: {problem}";
        }

        return failure;
    }

    private string? RunOne(string hook, string phase)
    {
        var start = new ProcessStartInfo(hook) { UseShellExecute = false };
        start.ArgumentList.Add(phase);
        try
        {
            using var process = Process.Start(start);
            if (process is null)
            {
                return "did not start";
            }

            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                return $"killed after {timeout.TotalSeconds:0.#} s";
            }

            return process.ExitCode == 0 ? null : $"exited {process.ExitCode}";
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"did not start: {e.Message}";
        }
    }
}
