namespace Strata.TestKit;

/// <summary>`strata serve …` as a real process (the CLI built beside the tests), with the rules of every <see cref="BackgroundProcess"/>.</summary>
public static class ServeProcess
{
    public static BackgroundProcess Start(string workingDirectory, IReadOnlyDictionary<string, string?>? environment, params string[] arguments)
        => BackgroundProcess.Start(Processes.DotnetHost(), [Processes.StrataDll, "serve", .. arguments],
            new ProcessOptions { WorkingDirectory = workingDirectory, Environment = environment });

    /// <summary>
    /// As <see cref="Start"/>, with SIGINT ignored when the daemon starts, as a shell leaves it for a
    /// command a script runs in the background (<c>trap '' INT</c>, then exec).
    /// </summary>
    public static BackgroundProcess StartWithSigintIgnored(string workingDirectory, params string[] arguments)
        => BackgroundProcess.Start("/bin/sh", ["-c", "trap '' INT; exec \"$0\" \"$@\"", Processes.DotnetHost(), Processes.StrataDll, "serve", .. arguments],
            ProcessOptions.In(workingDirectory));
}
