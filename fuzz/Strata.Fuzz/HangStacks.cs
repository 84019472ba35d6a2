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

    /// <summary>
    /// Where the hung thread entered Strata's own code: its outermost frame there, as Type.Method (an
    /// async method's state machine, Type+&lt;Method&gt;d__7.MoveNext(), named as its method); null when
    /// there is none.
    /// </summary>
    /// <remarks>
    /// Not the innermost frame: a loop that spans calls is caught in any of them, so one snapshot's
    /// innermost frame differs from the next one's; the way in stays the same.
    /// </remarks>
    public static string? EntryFrame(IReadOnlyList<string> threads)
    {
        ArgumentNullException.ThrowIfNull(threads);
        string? line = threads.Select(t => ProductFrames(t).LastOrDefault()).FirstOrDefault(f => f is not null);
        if (line is null)
        {
            return null;
        }

        string frame = line[(line.IndexOf('!', StringComparison.Ordinal) + 1)..];
        int machine = frame.IndexOf("+<", StringComparison.Ordinal);
        if (machine > 0)
        {
            int end = frame.IndexOf('>', machine);
            return $"{frame[..machine]}.{frame[(machine + 2)..end]}";
        }

        int arguments = frame.IndexOf('(', StringComparison.Ordinal);
        return arguments > 0 ? frame[..arguments] : frame;
    }

    /// <summary>A thread's frames in Strata's own code, not the driver's, innermost first.</summary>
    private static IEnumerable<string> ProductFrames(string thread)
        => thread.Split('\n').Select(l => l.Trim())
            .Where(l => l.Contains("!Strata.", StringComparison.Ordinal) && !l.Contains("!Strata.Fuzz.", StringComparison.Ordinal));
}
