using System.Diagnostics;

namespace Strata.Nbd.Tests;

/// <summary>qemu-storage-daemon exporting a raw file as "disk" on a unix socket: the reference server.</summary>
public sealed class QemuStorageDaemon : IDisposable
{
    private readonly Process _process;

    private QemuStorageDaemon(Process process, string socket)
    {
        _process = process;
        SocketPath = socket;
    }

    public string SocketPath { get; }

    public string Uri => $"nbd+unix:///disk?socket={SocketPath}";

    public static async Task<QemuStorageDaemon> StartAsync(string image, string socket, bool writable = true)
    {
        var start = new ProcessStartInfo("qemu-storage-daemon") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string argument in new[]
        {
            "--blockdev", $"driver=file,node-name=file0,filename={image},discard=unmap",
            "--blockdev", "driver=raw,node-name=fmt0,file=file0,discard=unmap",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
            "--export", $"type=nbd,id=exp0,node-name=fmt0,name=disk,writable={(writable ? "on" : "off")},allocation-depth=on",
        })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start qemu-storage-daemon");
        var daemon = new QemuStorageDaemon(process, socket);
        for (int i = 0; i < 200 && !File.Exists(socket); i++)
        {
            if (process.HasExited)
            {
                string error = await process.StandardError.ReadToEndAsync();
                daemon.Dispose();
                throw new InvalidOperationException($"qemu-storage-daemon exited: {error}");
            }

            await Task.Delay(50);
        }

        return daemon;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process.Dispose();
    }
}
