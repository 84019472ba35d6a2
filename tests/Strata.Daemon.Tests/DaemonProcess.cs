using System.Diagnostics;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>`strata serve` as a real process (so it can be killed with SIGKILL), on sockets in a folder.</summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;

    private DaemonProcess(Process process, string folder)
    {
        _process = process;
        NbdSocket = Path.Combine(folder, "nbd.sock");
        QmpSocket = Path.Combine(folder, "qmp.sock");
    }

    public string NbdSocket { get; }

    public string QmpSocket { get; }

    public int Pid => _process.Id;

    /// <summary>Starts `strata serve --drive id=ide0-hd0,file=IMAGE` and waits for both sockets to answer.</summary>
    public static async Task<DaemonProcess> StartAsync(string folder, string image)
    {
        foreach (var stale in new[] { "nbd.sock", "qmp.sock" })
        {
            File.Delete(Path.Combine(folder, stale));
        }

        var start = new ProcessStartInfo(Peer.DotnetHost())
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = folder,
        };
        foreach (var arg in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "strata.dll"), "serve", "--drive", $"id={LiveDaemon.DriveId},file={image}",
            "--nbd", $"unix:{Path.Combine(folder, "nbd.sock")}", "--qmp", $"unix:{Path.Combine(folder, "qmp.sock")}",
        })
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("strata serve did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var daemon = new DaemonProcess(process, folder);
        for (int i = 0; i < 600 && !(File.Exists(daemon.NbdSocket) && File.Exists(daemon.QmpSocket)); i++)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"strata serve exited with {process.ExitCode}");
            }

            await Task.Delay(50);
        }

        return daemon;
    }

    public Task<NbdClient> ConnectNbdAsync() => NbdClient.ConnectAsync(NbdEndpoint.Unix(NbdSocket), LiveDaemon.DriveId);

    public Task<QmpClient> ConnectQmpAsync() => QmpClient.ConnectAsync(QmpSocket);

    /// <summary>SIGKILL: no flush, no clean close — a crash.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}
