using Strata.Daemon;
using Strata.Nbd.Client;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>
/// A raw image served by an in-process <see cref="StorageDaemon"/> on a unix socket in a temp folder:
/// export "disk" (read-write) and "ro" (another file of the same size, read-only: an image served
/// read-write is locked against other users, the daemon's own other drives included).
/// </summary>
public sealed class ServedDisk : IAsyncDisposable
{
    private readonly TempFolder _folder;

    private ServedDisk(TempFolder folder, StorageDaemon daemon, string image, string socket)
    {
        _folder = folder;
        Daemon = daemon;
        ImagePath = image;
        SocketPath = socket;
        Endpoint = NbdEndpoint.Unix(socket);
    }

    public StorageDaemon Daemon { get; }

    public string ImagePath { get; }

    public string SocketPath { get; }

    public NbdEndpoint Endpoint { get; }

    public TempFolder Folder => _folder;

    public static async Task<ServedDisk> StartAsync(long size, NbdServerOptions? nbd = null, Action<string>? prepare = null)
    {
        var folder = new TempFolder();
        string image = folder.File("disk.img");
        using (var file = File.Create(image))
        {
            file.SetLength(size);
        }

        prepare?.Invoke(image);
        string readOnlyImage = folder.File("ro.img");
        using (var file = File.Create(readOnlyImage))
        {
            file.SetLength(size);
        }

        string socket = folder.File("nbd.sock");
        var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec("disk", image, "raw"), new DriveSpec("ro", readOnlyImage, "raw", ReadOnly: true)],
            NbdEndpoints = [NbdEndpoint.Unix(socket)],
            Nbd = nbd ?? new NbdServerOptions(),
        });
        try
        {
            await daemon.StartAsync();
        }
        catch
        {
            folder.Dispose();
            throw;
        }

        return new ServedDisk(folder, daemon, image, socket);
    }

    public string Uri(string export = "disk") => $"nbd+unix:///{export}?socket={SocketPath}";

    public Task<NbdClient> ConnectAsync(string export = "disk", NbdClientOptions? options = null) =>
        NbdClient.ConnectAsync(Endpoint, export, options);

    public async ValueTask DisposeAsync()
    {
        await Daemon.StopAsync();
        _folder.Dispose();
    }
}
