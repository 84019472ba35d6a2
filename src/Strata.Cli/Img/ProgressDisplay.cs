using System.Globalization;
using Spectre.Console;

namespace Strata.Cli.Img;

/// <summary>
/// The <c>-p</c> progress of long commands: a Spectre.Console bar on a terminal, otherwise
/// qemu-img's "    (42.00/100%)" lines ended by carriage returns.
/// </summary>
public static class ProgressDisplay
{
    /// <summary>Runs <paramref name="work"/>, giving it a callback that takes the percentage done (0 to 100).</summary>
    public static async Task RunAsync(ImgContext context, bool enabled, string label, Func<Action<double>, Task> work)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(work);
        if (!enabled || context.Quiet)
        {
            await work(_ => { });
            return;
        }

        if (ReferenceEquals(context.Out, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            await AnsiConsole.Progress().AutoClear(false).StartAsync(async progress =>
            {
                var task = progress.AddTask(label, maxValue: 100);
                await work(p => task.Value = p);
                task.Value = 100;
            });
            return;
        }

        double shown = -1;
        void Report(double percent)
        {
            // qemu-img redraws when the value moves by at least a hundredth of a percent; whole
            // percents keep a redirected log short.
            if (shown < 100 && (percent >= 100 || percent - shown >= 1))
            {
                shown = percent;
                context.Out.Write(string.Create(CultureInfo.InvariantCulture, $"    ({Math.Min(percent, 100):F2}/100%)\r"));
            }
        }

        Report(0);
        await work(Report);
        Report(100);
        context.Out.Write('\n');
    }
}
