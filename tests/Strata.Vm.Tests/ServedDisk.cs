using Strata.TestKit;

namespace Strata.Vm.Tests;

/// <summary>`strata serve` with the guest's data disk (a raw image) as drive ide0-hd0, on unix sockets in the test's folder.</summary>
public sealed class ServedDisk : IAsyncDisposable
{
    public const string Export = "ide0-hd0";

    private readonly BackgroundProcess _serve;

    private ServedDisk(BackgroundProcess serve, TempFolder folder)
    {
        _serve = serve;
        NbdSocket = folder.File("nbd.sock");
        QmpSocket = folder.File("qmp.sock");
    }

    public string NbdSocket { get; }

    public string QmpSocket { get; }

    /// <summary>Starts the daemon on <paramref name="image"/>; <paramref name="extra"/> are more `serve` options (e.g. --guest).</summary>
    public static async Task<ServedDisk> StartAsync(TempFolder folder, string image, params string[] extra)
    {
        File.Delete(folder.File("nbd.sock"));
        File.Delete(folder.File("qmp.sock"));
        var serve = ServeProcess.Start(folder.Path, null,
        [
            "--drive", $"id={Export},file={image},format=raw", "--nbd", $"unix:{folder.File("nbd.sock")}", "--qmp", $"unix:{folder.File("qmp.sock")}",
            .. extra,
        ]);
        var disk = new ServedDisk(serve, folder);
        await serve.WaitForFileAsync(disk.QmpSocket);
        await serve.WaitForFileAsync(disk.NbdSocket);
        return disk;
    }

    /// <summary>Stops the daemon as an operator would (SIGTERM) and fails unless it exits 0.</summary>
    public async Task StopAsync()
    {
        await _serve.SignalAsync("TERM");
        int code = await _serve.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(code == 0, $"strata serve exited {code}\n{_serve}");
    }

    public ValueTask DisposeAsync() => _serve.DisposeAsync();
}
