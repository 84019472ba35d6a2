using Strata.Block;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>A request carries its connection's token: a client that leaves takes its requests with it.</summary>
public sealed class NbdCancellationTests
{
    private const int Size = 1 << 20;

    /// <summary>Far beyond anything the server should take: reached only when it never lets go.</summary>
    private static readonly TimeSpan Never = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ARequestHeldAtADrainedGateIsCancelledWhenItsClientLeaves()
    {
        var node = new MemoryNode(Size);
        var gate = new RequestGate(node);
        using var folder = new TempFolder();
        await using var server = new StoppedWithin(Serve(gate, folder));
        using var drain = await gate.DrainAsync();

        var raw = await RawConnection.ConnectAsync(folder.File("nbd.sock"));
        await raw.GoAsync("disk");
        await raw.SendRequestAsync(NbdCommand.Write, NbdCommandFlags.None, 1, 0, 4, [1, 2, 3, 4]);
        raw.Dispose();

        await WaitUntilAsync(() => server.ConnectionCount == 0, "the connection stayed open, its write held at the drained gate");
        drain.Dispose();
        Assert.Equal(0, gate.InFlight);
        Assert.Equal(0, node.ToArray()[0]);
    }

    [Fact]
    public async Task AConnectionWhoseClientLeftIsNotHeldOpenByARequestHungInANode()
    {
        var node = new HangingNode(new MemoryNode(Size)) { HangAt = 0, IgnoresCancellation = true };
        var gate = new RequestGate(node);
        using var folder = new TempFolder();
        await using var server = new StoppedWithin(Serve(gate, folder));

        var raw = await RawConnection.ConnectAsync(folder.File("nbd.sock"));
        await raw.GoAsync("disk");
        await raw.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, 1, 0, 4096);
        await node.Entered.WaitAsync(Never);
        raw.Dispose();

        await WaitUntilAsync(() => server.ConnectionCount == 0, "the connection stayed open behind a request hung in its node");

        // The abandoned request ends later, with nobody to answer: the server stays up and serves others.
        node.Release();
        await WaitUntilAsync(() => gate.InFlight == 0, "the abandoned request never left the gate");
        using var again = await RawConnection.ConnectAsync(folder.File("nbd.sock"));
        await again.GoAsync("disk");
        await again.SendRequestAsync(NbdCommand.Write, NbdCommandFlags.None, 2, 0, 3, [5, 6, 7]);
        Assert.Equal((NbdErrno.None, 2ul), await again.ReadSimpleReplyAsync().WaitAsync(Never));
        await again.SendRequestAsync(NbdCommand.Read, NbdCommandFlags.None, 3, 0, 3);
        Assert.Equal([5, 6, 7], await again.ReadStructuredReadReplyAsync(3, 0, 3).WaitAsync(Never));
    }

    /// <summary>
    /// Stops the server at the end of a test, waiting at most <see cref="Never"/>: a server held open
    /// by the very fault a test looks for must not hang the run after its assertion has failed.
    /// </summary>
    private sealed class StoppedWithin(NbdServer server) : IAsyncDisposable
    {
        public int ConnectionCount => server.ConnectionCount;

        public async ValueTask DisposeAsync()
        {
            var stop = server.DisposeAsync().AsTask();
            await Task.WhenAny(stop, Task.Delay(Never));
        }
    }

    private static NbdServer Serve(RequestGate gate, TempFolder folder)
    {
        var server = new NbdServer(new SingleExportCatalog(new NbdExport("disk", gate)));
        server.Listen(NbdEndpoint.Unix(folder.File("nbd.sock")));
        return server;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow + Never;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            await Task.Delay(20);
        }
    }
}
