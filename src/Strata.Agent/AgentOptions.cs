using System.Globalization;

namespace Strata.Agent;

/// <summary>strata-agent's command line: <c>--port PATH [--hooks DIR] [--lease SECONDS] [--hook-timeout SECONDS]</c>.</summary>
internal sealed record AgentOptions(string Port, string? Hooks, TimeSpan Lease, TimeSpan HookTimeout)
{
    public const string Usage = "usage: strata-agent --port PATH [--hooks DIR] [--lease SECONDS] [--hook-timeout SECONDS]";

    /// <summary>Parses the arguments; throws <see cref="ArgumentException"/> with a one-line message on bad input.</summary>
    public static AgentOptions Parse(IReadOnlyList<string> args)
    {
        string? port = null, hooks = null;
        var lease = TimeSpan.FromSeconds(10);
        var hookTimeout = TimeSpan.FromSeconds(10);
        for (int i = 0; i < args.Count; i += 2)
        {
            string value = i + 1 < args.Count ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value; {Usage}");
            switch (args[i])
            {
                case "--port": port = value; break;
                case "--hooks": hooks = value; break;
                case "--lease": lease = Seconds(args[i], value); break;
                case "--hook-timeout": hookTimeout = Seconds(args[i], value); break;
                default: throw new ArgumentException($"unknown option '{args[i]}'; {Usage}");
            }
        }

        return new AgentOptions(port ?? throw new ArgumentException($"--port is required; {Usage}"), hooks, lease, hookTimeout);
    }

    private static TimeSpan Seconds(string option, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s > 0 && s <= 3600
            ? TimeSpan.FromSeconds(s)
            : throw new ArgumentException($"{option} '{value}': a number of seconds above 0 and at most 3600");
}
