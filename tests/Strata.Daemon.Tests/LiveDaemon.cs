using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// An in-process daemon serving one raw disk "ide0-hd0" (created here) over NBD and QMP unix sockets
/// in a temp folder, with a guest-side NBD client, a control client and a byte model of the disk.
/// </summary>
public sealed class LiveDaemon : IAsyncDisposable
{
    private LiveDaemon(TempFolder folder, StorageDaemon daemon, string baseImage, long size)
    {
        Folder = folder;
        Daemon = daemon;
        BaseImage = baseImage;
        Model = new byte[size];
    }

    public const string DriveId = DriveSpec.HdaId;

    public TempFolder Folder { get; }

    public StorageDaemon Daemon { get; }

    public string BaseImage { get; }

    public string NbdSocket => Folder.File("nbd.sock");

    public string QmpSocket => Folder.File("qmp.sock");

    /// <summary>What the guest must read: every write the tests make through <see cref="WriteRandomlyAsync"/> lands here too.</summary>
    public byte[] Model { get; }

    public static Task<LiveDaemon> StartAsync(long size = 8 << 20, params string[] extraDrives) => StartAsync(o => o, size, extraDrives);

    /// <summary>As <see cref="StartAsync(long, string[])"/>, with the daemon's options changed by <paramref name="configure"/> (bitmap files, -S…).</summary>
    public static async Task<LiveDaemon> StartAsync(Func<DaemonOptions, DaemonOptions> configure, long size = 8 << 20, params string[] extraDrives)
    {
        var folder = new TempFolder();
        string image = folder.File("foo.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", image, size.ToString()).AssertSuccess();
        var drives = new List<DriveSpec> { new(DriveId, image, "raw") };
        foreach (var id in extraDrives)
        {
            string other = folder.File($"{id}.img");
            Processes.Run("qemu-img", "create", "-q", "-f", "raw", other, size.ToString()).AssertSuccess();
            drives.Add(new DriveSpec(id, other, "raw"));
        }

        var daemon = new StorageDaemon(configure(new DaemonOptions
        {
            Drives = drives,
            NbdEndpoints = [NbdEndpoint.Unix(folder.File("nbd.sock"))],
            QmpEndpoints = [NbdEndpoint.Unix(folder.File("qmp.sock"))],
        }));
        await daemon.StartAsync();
        return new LiveDaemon(folder, daemon, image, size);
    }

    public Task<NbdClient> ConnectNbdAsync(string export = DriveId) => NbdClient.ConnectAsync(NbdEndpoint.Unix(NbdSocket), export);

    public Task<QmpClient> ConnectQmpAsync() => QmpClient.ConnectAsync(QmpSocket);

    /// <summary>
    /// Seeded random writes through <paramref name="client"/>, mirrored into the model; stops at
    /// <paramref name="maxOps"/> or when told. They stay below <paramref name="end"/> (default: the whole disk).
    /// </summary>
    public async Task<int> WriteRandomlyAsync(NbdClient client, int seed, int maxOps, int maxLength = 64 << 10, long end = 0,
        CancellationToken stop = default)
    {
        long limit = end > 0 ? end : Model.Length;
        var random = new Random(seed);
        int done = 0;
        for (; done < maxOps && !stop.IsCancellationRequested; done++)
        {
            int length = random.Next(1, maxLength / 512 + 1) * 512;
            long offset = random.NextInt64(0, (limit - length) / 512 + 1) * 512;
            var data = new byte[length];
            random.NextBytes(data);
            await client.WriteAsync(offset, data, cancellationToken: CancellationToken.None);
            lock (Model)
            {
                data.CopyTo(Model, offset);
            }
        }

        return done;
    }

    /// <summary>Reads the whole disk through <paramref name="client"/>.</summary>
    public async Task<byte[]> ReadAllAsync(NbdClient client)
    {
        var all = new byte[Model.Length];
        for (int done = 0; done < all.Length; done += 1 << 20)
        {
            await client.ReadAsync(done, all.AsMemory(done, Math.Min(1 << 20, all.Length - done)));
        }

        return all;
    }

    public static bool SameBytes(byte[] expected, byte[] actual) => expected.AsSpan().SequenceEqual(actual);

    public async ValueTask DisposeAsync()
    {
        await Daemon.StopAsync();
        Folder.Dispose();
    }
}
