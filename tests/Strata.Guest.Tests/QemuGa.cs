using Strata.TestKit;

namespace Strata.Guest.Tests;

/// <summary>
/// The real qemu-ga, run on the host in unix-listen mode (it is then the server, as QEMU's chardev is
/// for a VM) with every command blocked but sync, ping and info: it can never freeze the host's file
/// systems, write a file, run a program or shut anything down. qemu-ga 7.2 has no allow-list
/// (--allow-rpcs came in 8.0), so the block list is every command it names in <c>-b help</c> but those.
/// </summary>
internal sealed class QemuGa : IAsyncDisposable
{
    public static readonly string[] Allowed = ["guest-sync-delimited", "guest-sync", "guest-ping", "guest-info"];

    private readonly BackgroundProcess _process;
    private readonly TempFolder _folder;

    private QemuGa(BackgroundProcess process, TempFolder folder, string socket)
    {
        _process = process;
        _folder = folder;
        SocketPath = socket;
    }

    public string SocketPath { get; }

    public static string Program => File.Exists("/usr/sbin/qemu-ga") ? "/usr/sbin/qemu-ga" : "qemu-ga";

    public static async Task<QemuGa> StartAsync()
    {
        var commands = Processes.Run(Program, "-b", "help").AssertSuccess().Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (string mustBlock in new[] { "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-shutdown", "guest-file-write", "guest-exec" })
        {
            Assert.True(commands.Contains(mustBlock), $"qemu-ga -b help does not list {mustBlock}: cannot be sure it is blocked");
        }

        string blocked = string.Join(',', commands.Except(Allowed));
        var folder = new TempFolder("qga");
        string socket = folder.File("qga.sock");
        var process = BackgroundProcess.Start(Program,
            ["-m", "unix-listen", "-p", socket, "-f", folder.File("qga.pid"), "-t", folder.Path, "-b", blocked]);
        try
        {
            await process.WaitForFileAsync(socket);
        }
        catch
        {
            await process.DisposeAsync();
            folder.Dispose();
            throw;
        }

        return new QemuGa(process, folder, socket);
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        _folder.Dispose();
    }
}
