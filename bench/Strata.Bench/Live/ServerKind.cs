namespace Strata.Bench.Live;

/// <summary>A server the live benchmarks run, by name, and how to make one in a run's folder.</summary>
internal sealed record ServerKind(string Name, Func<string, LiveServer> Create)
{
    /// <summary>Strata and its reference, qemu-storage-daemon, in the order every run alternates them.</summary>
    public static IReadOnlyList<ServerKind> Both(LiveOptions options)
    {
        var (program, prefix) = StrataBinary.Locate(options.Strata);
        return [new("strata", folder => new StrataServer(program, prefix, folder)), new("qsd", folder => new QsdServer(folder))];
    }
}
