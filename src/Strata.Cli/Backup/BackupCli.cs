using System.Net.Sockets;
using Strata.Backup;
using Strata.Backup.Stores;
using Strata.Block;
using Strata.Cli.Img;
using Strata.Daemon.Control;

namespace Strata.Cli.Backup;

/// <summary>What every backup subcommand shares: the one-line error at the edge, and the exit codes.</summary>
internal static class BackupCli
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Mismatch = 2;

    /// <summary>The object store refused the credentials or stayed unreachable through every retry (docs/backup.md).</summary>
    public const int StoreUnavailable = 3;

    public const string Prefix = "strata backup: ";

    /// <summary>Runs <paramref name="work"/>; a failure a user can cause becomes one line on <paramref name="error"/> and exit 1.</summary>
    public static async Task<int> RunAsync(TextWriter error, Func<Task<int>> work)
    {
        try
        {
            return await work();
        }
        catch (BackupStoreException e)
        {
            error.WriteLine(Prefix + e.Message);
            return StoreUnavailable;
        }
        catch (Exception e) when (e is BackupException or BlockException or IOException or UnauthorizedAccessException or QmpException
            or SocketException or CliException or ArgumentException)
        {
            error.WriteLine(Prefix + e.Message);
            return Failed;
        }
    }

    /// <summary>-p: the progress display of the image tools (a bar on a terminal, qemu-img's lines otherwise).</summary>
    public static Task ProgressAsync(TextWriter output, TextWriter error, bool enabled, string label, Func<Action<double>, Task> work) =>
        ProgressDisplay.RunAsync(new ImgContext(output, error), enabled, label, work);

    /// <summary>A byte count for people: "5 MiB".</summary>
    public static string Bytes(long bytes) => ImgContext.HumanSize(bytes);
}
