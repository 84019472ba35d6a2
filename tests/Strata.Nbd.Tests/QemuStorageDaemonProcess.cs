using System.Diagnostics;

namespace Strata.Nbd.Tests;

/// <summary>qemu-storage-daemon with arguments as given, waited for until its socket exists; killed by its PID at the end.</summary>
public sealed class QemuStorageDaemonProcess : IDisposable
{
    private readonly Process _process;

    private QemuStorageDaemonProcess(Process process) => _process = process;

    public static async Task<QemuStorageDaemonProcess> StartAsync(string socket, params string[] arguments)
    {
        var start = new ProcessStartInfo("qemu-storage-daemon") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = new QemuStorageDaemonProcess(Process.Start(start) ?? throw new InvalidOperationException("could not start qemu-storage-daemon"));
        for (int i = 0; i < 200 && !File.Exists(socket); i++)
        {
            if (process._process.HasExited)
            {
                string error = await process._process.StandardError.ReadToEndAsync();
                process.Dispose();
                throw new InvalidOperationException($"qemu-storage-daemon exited: {error}");
            }

            await Task.Delay(50);
        }

        return process;
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
