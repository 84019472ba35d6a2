using System.Net;
using System.Net.Sockets;
using Strata.Daemon;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

public sealed class NbdTcpTests
{
    [Fact]
    public async Task LoopbackTcpExportServesQemuIo()
    {
        using var folder = new TempFolder();
        string image = folder.File("disk.img");
        await Processes.OkAsync("truncate", "-s", "4M", image);
        int port = FreeLoopbackPort();
        await using var daemon = new StorageDaemon(new DaemonOptions
        {
            Drives = [new DriveSpec("disk", image)],
            NbdEndpoints = [NbdEndpoint.Parse($"tcp:127.0.0.1:{port}")],
        });
        await daemon.StartAsync();
        string uri = $"nbd://127.0.0.1:{port}/disk";
        string output = await Processes.OkAsync("qemu-io", "-f", "raw", "-c", "write -P 0x3c 0 256k", "-c", "read -P 0x3c 0 256k", uri);
        Assert.DoesNotContain("verification failed", output);
        Assert.Equal("4194304", (await Processes.OkAsync("nbdinfo", "--size", uri)).Trim());
    }

    private static int FreeLoopbackPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
