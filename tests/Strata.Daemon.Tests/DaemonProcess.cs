using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>`strata serve` as a real process (so it can be killed with SIGKILL), serving one drive on sockets in a folder.</summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly BackgroundProcess _process;

    private DaemonProcess(BackgroundProcess process, string folder)
    {
        _process = process;
        NbdSocket = Path.Combine(folder, "nbd.sock");
        QmpSocket = Path.Combine(folder, "qmp.sock");
    }

    public string NbdSocket { get; }

    public string QmpSocket { get; }

    /// <summary>Starts `strata serve --drive id=ide0-hd0,file=IMAGE[,format=FORMAT]` and waits for both sockets to appear.</summary>
    public static Task<DaemonProcess> StartAsync(string folder, string image, string? format = null) => StartAsync(folder, image, format, []);

    /// <summary>As <see cref="StartAsync(string, string, string?)"/>, with more options for `strata serve` (`--bitmap …`).</summary>
    public static Task<DaemonProcess> StartAsync(string folder, string image, string? format, params string[] options) =>
        StartDriveAsync(folder, $"file={image}" + (format is null ? "" : $",format={format}"), options);

    /// <summary>Starts `strata serve --drive id=ide0-hd0,DRIVE` (<paramref name="drive"/>: file= and any other keys) with more <paramref name="options"/>.</summary>
    public static async Task<DaemonProcess> StartDriveAsync(string folder, string drive, params string[] options)
    {
        foreach (var stale in new[] { "nbd.sock", "qmp.sock" })
        {
            File.Delete(Path.Combine(folder, stale));
        }

        var process = ServeProcess.Start(folder, null, ["--drive", $"id={LiveDaemon.DriveId},{drive}",
            "--nbd", $"unix:{Path.Combine(folder, "nbd.sock")}", "--qmp", $"unix:{Path.Combine(folder, "qmp.sock")}", .. options]);
        var daemon = new DaemonProcess(process, folder);
        try
        {
            await process.WaitForFileAsync(daemon.NbdSocket);
            await process.WaitForFileAsync(daemon.QmpSocket);
        }
        catch
        {
            process.Dispose();
            throw;
        }

        return daemon;
    }

    public Task<NbdClient> ConnectNbdAsync() => NbdClient.ConnectAsync(NbdEndpoint.Unix(NbdSocket), LiveDaemon.DriveId);

    public Task<QmpClient> ConnectQmpAsync() => QmpClient.ConnectAsync(QmpSocket);

    /// <summary>Sends a signal by name (TERM, INT, HUP …).</summary>
    public Task SignalAsync(string signal) => _process.SignalAsync(signal);

    /// <summary>QMP "quit": the daemon closes every image cleanly; waits (bounded) for it to exit and returns its exit code.</summary>
    public async Task<int> QuitAsync()
    {
        await using (var qmp = await ConnectQmpAsync())
        {
            await qmp.SendAsync(new System.Text.Json.Nodes.JsonObject { ["execute"] = "quit" });
        }

        return await WaitForExitAsync();
    }

    /// <summary>Waits (bounded) for the daemon to exit and returns its exit code.</summary>
    public Task<int> WaitForExitAsync() => _process.WaitForExitAsync();

    /// <summary>What the daemon printed so far, for failure messages.</summary>
    public string Output => $"stdout: {_process.Stdout} stderr: {_process.Stderr}";

    /// <summary>SIGKILL: no flush, no clean close — a crash.</summary>
    public Task KillAsync() => _process.KillAsync();

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}
