using Strata.Block;
using Strata.Nbd.Client;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>An export counts its clients; once retired it takes no new one, and says when its last has gone.</summary>
public sealed class NbdExportRetireTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task ARetiredExportRefusesNewClientsAndIsGoneWhenItsLastClientLeaves()
    {
        using var folder = new TempFolder();
        var (export, endpoint, server) = Serve(folder);
        await using var stops = server;
        var client = await NbdClient.ConnectAsync(endpoint, "disk");
        Assert.Equal(1, export.ClientCount);
        var gone = export.Retire();
        Assert.False(gone.IsCompleted);
        await Assert.ThrowsAnyAsync<Exception>(() => NbdClient.ConnectAsync(endpoint, "disk"));

        await client.ReadAsync(0, new byte[512]);
        await client.DisconnectAsync();
        await gone.WaitAsync(Wait);
        Assert.Equal(0, export.ClientCount);
        await client.DisposeAsync();
    }

    [Fact]
    public async Task DisconnectingClientsEndsTheirConnections()
    {
        using var folder = new TempFolder();
        var (export, endpoint, server) = Serve(folder);
        await using var stops = server;
        await using var client = await NbdClient.ConnectAsync(endpoint, "disk");

        var gone = export.Retire();
        export.DisconnectClients();
        await gone.WaitAsync(Wait);
        await Assert.ThrowsAnyAsync<Exception>(() => client.ReadAsync(0, new byte[512]));
    }

    private static (NbdExport Export, NbdEndpoint Endpoint, NbdServer Server) Serve(TempFolder folder)
    {
        var export = new NbdExport("disk", new RequestGate(new MemoryNode(1 << 20)));
        var server = new NbdServer(new SingleExportCatalog(export));
        var endpoint = NbdEndpoint.Unix(folder.File("nbd.sock"));
        server.Listen(endpoint);
        return (export, endpoint, server);
    }
}
