using System.Diagnostics;
using System.Globalization;

namespace Strata.Fuzz;

/// <summary>
/// Where a hung run is: a loop that does no I/O never meets its cancellation, so its stack can only
/// be read from outside. dotnet-stack (in the repository's tool manifest) reads this very process's
/// threads; the ones running Strata's code are kept.
/// </summary>
internal static class HangStacks
{
    private static readonly TimeSpan ReportLimit = TimeSpan.FromSeconds(60);

    /// <summary>The stacks of the threads in Strata's code, or one line saying why there are none.</summary>
    public static IReadOnlyList<string> Read()
    {
        string pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "dotnet-stack", "report", "-p", pid },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        try
        {
            using var tool = Process.Start(start)!;
            var output = tool.StandardOutput.ReadToEndAsync();
            var errors = tool.StandardError.ReadToEndAsync();
            if (!tool.WaitForExit(ReportLimit))
            {
                tool.Kill();
                return ["(no stack: dotnet-stack did not answer in time)"];
            }

            if (tool.ExitCode != 0)
            {
                return [$"(no stack: dotnet-stack failed; run 'dotnet tool restore' in the repository first) {errors.Result.Trim()}"];
            }

            return [.. output.Result.Split("Thread (").Where(t => ProductFrames(t).Any()).Select(t => "Thread (" + t.TrimEnd())];
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return [$"(no stack: {e.Message})"];
        }
    }

    /// <summary>A thread's frames in Strata's own code, not the driver's, innermost first.</summary>
    private static IEnumerable<string> ProductFrames(string thread)
        => thread.Split('\n').Select(l => l.Trim())
            .Where(l => l.Contains("!Strata.", StringComparison.Ordinal) && !l.Contains("!Strata.Fuzz.", StringComparison.Ordinal));
}
