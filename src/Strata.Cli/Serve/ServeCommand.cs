using System.CommandLine;

namespace Strata.Cli.Serve;

/// <summary>`strata serve …`: the daemon that exports drives over NBD (like qemu-storage-daemon).</summary>
public static class ServeCommand
{
    public static Command Build() => new("serve", "Serve disk images to guests over NBD (like qemu-storage-daemon).");
}
