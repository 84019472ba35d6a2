using System.Diagnostics;
using System.Globalization;

namespace Strata.Fuzz;

/// <summary>
/// Where a hung run is: a loop that does no I/O never meets its cancellation, so its stack can only
/// be read from outside. dotnet-stack (in the repository's tool manifest) reads this very process's
/// threads; the ones running Strata's code are printed.
/// </summary>
internal static class HangStacks
{
    private static readonly TimeSpan ReportLimit = TimeSpan.FromSeconds(60);

    public static void Print()
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
                Console.WriteLine("(dotnet-stack did not answer in time)");
                return;
            }

            if (tool.ExitCode != 0)
            {
                Console.WriteLine($"(no stack: dotnet-stack failed; run 'dotnet tool restore' in the repository first) {errors.Result.Trim()}");
                return;
            }

            foreach (string thread in output.Result.Split("Thread (").Where(IsInStrata))
            {
                Console.Write("Thread (" + thread);
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Console.WriteLine($"(no stack: {e.Message})");
        }
    }

    /// <summary>A thread in Strata's own code, not only in the driver's.</summary>
    private static bool IsInStrata(string thread)
        => thread.Split('\n').Any(line => line.Contains("!Strata.", StringComparison.Ordinal)
            && !line.Contains("!Strata.Fuzz.", StringComparison.Ordinal));
}
