using System.Globalization;
using Strata.Daemon.Control;

namespace Strata.TestKit;

/// <summary>
/// qemu-storage-daemon, the reference server, as a <see cref="BackgroundProcess"/>. Start returns
/// once its sockets and its pid file exist and the pid file names the process started here, and
/// throws with qsd's output when they do not within the timeout or qsd exits first. Dispose kills it
/// by that PID. Its QMP monitor, when asked for, is reached through the product's <see cref="QmpClient"/>.
/// </summary>
public sealed class Qsd : IDisposable, IAsyncDisposable
{
    private readonly BackgroundProcess _process;

    private Qsd(BackgroundProcess process, string socket, string? qmpSocket)
    {
        _process = process;
        Socket = socket;
        QmpSocket = qmpSocket;
    }

    /// <summary>The socket start waited for (its NBD server's).</summary>
    public string Socket { get; }

    /// <summary>The URI of the export named "disk" (the one <see cref="ExportRawAsync"/> makes) on <see cref="Socket"/>.</summary>
    public string Uri => $"nbd+unix:///disk?socket={Socket}";

    /// <summary>The QMP socket, when started with one.</summary>
    public string? QmpSocket { get; }

    public int Id => _process.Id;

    /// <summary>What qsd printed so far, with its command line.</summary>
    public override string ToString() => _process.ToString();

    /// <summary>
    /// Starts <c>qemu-storage-daemon ARGUMENTS --pidfile SOCKET.pid</c> (and a QMP monitor on
    /// <paramref name="qmpSocket"/> when given) and waits for <paramref name="socket"/>, the QMP socket and the pid file.
    /// </summary>
    public static async Task<Qsd> StartAsync(string socket, string? qmpSocket, IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        string pidFile = socket + ".pid";
        var all = new List<string>(arguments) { "--pidfile", pidFile };
        if (qmpSocket is not null)
        {
            all.AddRange(["--chardev", $"socket,id=qmp0,path={qmpSocket},server=on,wait=off", "--monitor", "chardev=qmp0"]);
        }

        var process = BackgroundProcess.Start("qemu-storage-daemon", all);
        try
        {
            await process.WaitUntilAsync(() => File.Exists(socket) && (qmpSocket is null || File.Exists(qmpSocket)) && PidFileNames(pidFile, process.Id),
                $"qemu-storage-daemon did not create {socket}{(qmpSocket is null ? "" : $" and {qmpSocket}")} and a pid file naming pid {process.Id}", timeout);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }

        return new Qsd(process, socket, qmpSocket);
    }

    /// <summary>Starts qsd with <paramref name="arguments"/> and waits for <paramref name="socket"/> (its NBD server's).</summary>
    public static Task<Qsd> StartAsync(string socket, params string[] arguments) => StartAsync(socket, null, arguments);

    /// <summary>qsd exporting the raw file <paramref name="image"/> as "disk" (with allocation-depth) on <paramref name="socket"/>.</summary>
    public static Task<Qsd> ExportRawAsync(string image, string socket, bool writable = true) => StartAsync(socket,
        "--blockdev", $"driver=file,node-name=file0,filename={image},discard=unmap",
        "--blockdev", "driver=raw,node-name=fmt0,file=file0,discard=unmap",
        "--nbd-server", $"addr.type=unix,addr.path={socket}",
        "--export", $"type=nbd,id=exp0,node-name=fmt0,name=disk,writable={(writable ? "on" : "off")},allocation-depth=on");

    /// <summary>
    /// The x-debug-block-dirty-bitmap-sha256 of <paramref name="bitmap"/> in the qcow2 image
    /// <paramref name="image"/>, opened read-only (so QEMU marks nothing in use), with its sockets in <paramref name="folder"/>.
    /// </summary>
    public static async Task<string> BitmapSha256Async(string image, string bitmap, TempFolder folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        string socket = folder.File($"q{Guid.NewGuid().ToString("N")[..6]}.sock");
        await using var qsd = await StartAsync(socket, socket + ".qmp",
        [
            "--blockdev", $"driver=file,node-name=file0,filename={image},read-only=on",
            "--blockdev", "driver=qcow2,node-name=fmt0,file=file0,read-only=on",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
        ]);
        await using var qmp = await qsd.ConnectQmpAsync();
        var reply = await qmp.ExecuteAsync("x-debug-block-dirty-bitmap-sha256", new System.Text.Json.Nodes.JsonObject { ["node"] = "fmt0", ["name"] = bitmap });
        return reply!["sha256"]!.GetValue<string>();
    }

    /// <summary>A control connection past capabilities negotiation; fails after 30 s.</summary>
    public async Task<QmpClient> ConnectQmpAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await QmpClient.ConnectAsync(QmpSocket ?? throw new InvalidOperationException("qemu-storage-daemon was started without a QMP socket"), timeout.Token);
    }

    /// <summary>Waits (bounded) for qsd to exit on its own (after QMP "quit": images closed, persistent bitmaps stored) and returns its exit code.</summary>
    public Task<int> WaitForExitAsync(TimeSpan? timeout = null) => _process.WaitForExitAsync(timeout);

    public void Dispose() => _process.Dispose();

    public ValueTask DisposeAsync() => _process.DisposeAsync();

    private static bool PidFileNames(string pidFile, int pid)
    {
        try
        {
            return File.Exists(pidFile) && File.ReadAllText(pidFile).Trim() == pid.ToString(CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return false;
        }
    }
}
