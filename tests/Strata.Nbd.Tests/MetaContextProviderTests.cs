using System.Buffers.Binary;
using System.Text;
using Strata.Block;
using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>Metadata contexts are providers an export carries: a new one is served without touching the server.</summary>
public sealed class MetaContextProviderTests
{
    private const long Size = 1024 * 1024;
    private const long Stripe = 192 * 1024;

    [Fact]
    public async Task NbdinfoMapsAToyContextAddedToTheExport()
    {
        await using var served = await ToyServer.StartAsync();
        string map = await Processes.OkAsync("nbdinfo", $"--map={StripeContext.ContextName}", served.Uri);
        Assert.Equal(
            ["0 196608 0", "196608 196608 1", "393216 196608 0", "589824 196608 1", "786432 196608 0", "983040 65536 1"],
            Lines(map).Select(l => string.Join(' ', l.Split(' ').Take(3))));
    }

    [Fact]
    public async Task TheToyContextAnswersBesideTheBuiltInOnesWithItsOwnBoundaries()
    {
        await using var served = await ToyServer.StartAsync();
        await using var client = await NbdClient.ConnectAsync(NbdEndpoint.Unix(served.Socket), "disk",
            new NbdClientOptions { MetaContexts = [NbdWire.BaseAllocation, StripeContext.ContextName] });
        var status = await client.BlockStatusAsync(65536, 262144);
        Assert.Equal([new NbdStatusExtent(131072, 0), new NbdStatusExtent(131072, 1)], status[StripeContext.ContextName]);
        Assert.Equal([new NbdStatusExtent(262144, NbdWire.StateHole | NbdWire.StateZero)], status[NbdWire.BaseAllocation]);
    }

    [Fact]
    public async Task IdsAreGivenPerConnectionInTheOrderTheContextsAreSet()
    {
        await using var served = await ToyServer.StartAsync();
        using var raw = await RawConnection.ConnectAsync(served.Socket);
        await raw.SendOptionAsync(NbdOption.StructuredReply, []);
        Assert.Equal(NbdOptionReply.Ack, (await raw.ReadOptionReplyAsync()).Type);
        var set = await QueryAsync(raw, NbdOption.SetMetaContext, StripeContext.ContextName, NbdWire.QemuAllocationDepth);
        Assert.Equal([(1u, NbdWire.QemuAllocationDepth), (2u, StripeContext.ContextName)], set);
    }

    [Theory]
    [InlineData("strata:", new[] { StripeContext.ContextName })]
    [InlineData("qemu:", new[] { NbdWire.QemuAllocationDepth })]
    [InlineData("base:", new[] { NbdWire.BaseAllocation })]
    [InlineData("strata:toy", new[] { StripeContext.ContextName })]
    [InlineData("strata:t", new string[0])]
    [InlineData("nothing:", new string[0])]
    public async Task ListingByPrefixFindsTheContextsUnderIt(string query, string[] expected)
    {
        await using var served = await ToyServer.StartAsync();
        using var raw = await RawConnection.ConnectAsync(served.Socket);
        var listed = await QueryAsync(raw, NbdOption.ListMetaContext, query);
        Assert.Equal(expected, listed.Select(c => c.Name));
        Assert.All(listed, c => Assert.Equal(0u, c.Id));
    }

    [Fact]
    public async Task AnEmptyListingFindsEveryContextAndASetOfAPrefixFindsNone()
    {
        await using var served = await ToyServer.StartAsync();
        using var raw = await RawConnection.ConnectAsync(served.Socket);
        Assert.Equal([NbdWire.BaseAllocation, NbdWire.QemuAllocationDepth, StripeContext.ContextName],
            (await QueryAsync(raw, NbdOption.ListMetaContext)).Select(c => c.Name));
        await raw.SendOptionAsync(NbdOption.StructuredReply, []);
        Assert.Equal(NbdOptionReply.Ack, (await raw.ReadOptionReplyAsync()).Type);
        Assert.Empty(await QueryAsync(raw, NbdOption.SetMetaContext, "strata:"));
    }

    [Fact]
    public void AContextNameIsOfferedOnce()
    {
        var export = new NbdExport("disk", new RequestGate(new MemoryNode(Size)));
        Assert.Throws<ArgumentException>(() => export.AddMetaContext(new BaseAllocationTwin()));
        export.AddMetaContext(new StripeContext(Stripe));
        Assert.True(export.RemoveMetaContext(StripeContext.ContextName));
        Assert.False(export.RemoveMetaContext(StripeContext.ContextName));
    }

    /// <summary>Sends a LIST or SET of <paramref name="queries"/> for export "disk"; returns the contexts replied, with their ids.</summary>
    private static async Task<List<(uint Id, string Name)>> QueryAsync(RawConnection raw, NbdOption option, params string[] queries)
    {
        byte[] export = Encoding.UTF8.GetBytes("disk");
        var data = new List<byte>([.. RawConnection.Be32((uint)export.Length), .. export, .. RawConnection.Be32((uint)queries.Length)]);
        foreach (string query in queries)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(query);
            data.AddRange([.. RawConnection.Be32((uint)bytes.Length), .. bytes]);
        }

        await raw.SendOptionAsync(option, [.. data]);
        var contexts = new List<(uint, string)>();
        while (true)
        {
            var (type, reply) = await raw.ReadOptionReplyAsync();
            if (type == NbdOptionReply.Ack)
            {
                return contexts;
            }

            Assert.Equal(NbdOptionReply.MetaContext, type);
            contexts.Add((BinaryPrimitives.ReadUInt32BigEndian(reply), Encoding.UTF8.GetString(reply, 4, reply.Length - 4)));
        }
    }

    private static string[] Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToArray();

    private sealed class BaseAllocationTwin : Server.MetaContexts.INbdMetaContext
    {
        public string Name => NbdWire.BaseAllocation;

        public ValueTask<Server.MetaContexts.NbdMetaExtent> GetExtentAsync(long offset, long length, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
    }

    /// <summary>A memory disk exported as "disk" with the toy context added, on a unix socket in a temp folder.</summary>
    private sealed class ToyServer : IAsyncDisposable
    {
        private readonly TempFolder _folder;
        private readonly NbdServer _server;

        private ToyServer(TempFolder folder, NbdServer server)
        {
            _folder = folder;
            _server = server;
        }

        public string Socket => _folder.File("nbd.sock");

        public string Uri => $"nbd+unix:///disk?socket={Socket}";

        public static Task<ToyServer> StartAsync()
        {
            var export = new NbdExport("disk", new RequestGate(new MemoryNode(Size)));
            export.AddMetaContext(new StripeContext(Stripe));
            var served = new ToyServer(new TempFolder(), new NbdServer(new SingleExportCatalog(export)));
            served._server.Listen(NbdEndpoint.Unix(served.Socket));
            return Task.FromResult(served);
        }

        public async ValueTask DisposeAsync()
        {
            await _server.DisposeAsync();
            _folder.Dispose();
        }
    }
}
