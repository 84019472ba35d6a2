namespace Strata.Daemon;

/// <summary>Where the daemon puts its sockets when not told: <c>$XDG_RUNTIME_DIR/strata/</c>, else <c>./.strata/</c>.</summary>
public static class SocketDefaults
{
    public const string NbdSocketName = "nbd.sock";
    public const string QmpSocketName = "qmp.sock";

    public static string Directory(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? runtime = environment("XDG_RUNTIME_DIR");
        return string.IsNullOrEmpty(runtime)
            ? Path.Combine(Environment.CurrentDirectory, ".strata")
            : Path.Combine(runtime, "strata");
    }
}
