using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Nbd.Client;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server;
using Strata.Nbd.Server.MetaContexts;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Nbd.Tests;

/// <summary>An export offers a dirty bitmap as "qemu:dirty-bitmap:NAME", which QEMU's and libnbd's clients read.</summary>
public sealed class DirtyBitmapContextTests
{
    private const long Size = 4L << 20;
    private const long Granularity = 64 * 1024;

    [Fact]
    public async Task NbdinfoMapsExactlyTheDirtyGranules()
    {
        var bits = new DirtyBitmap(Size, Granularity);
        bits.Set(100, 1);                      // granule 0
        bits.Set(3 * Granularity, 2 * Granularity + 1); // granules 3..5
        bits.Set(Size - 1, 1);                 // the last granule
        await using var served = await Served.StartAsync(bits);
        string map = await Processes.OkAsync("nbdinfo", "--map=qemu:dirty-bitmap:t0", served.Uri);
        Assert.Equal(
            [$"0 {Granularity} 1", $"{Granularity} {2 * Granularity} 0", $"{3 * Granularity} {3 * Granularity} 1",
             $"{6 * Granularity} {Size - 7 * Granularity} 0", $"{Size - Granularity} {Granularity} 1"],
            Lines(map));
    }

    [Fact]
    public async Task QemuImgMapWithXDirtyBitmapSeesTheDirtyExtentsAsHoles()
    {
        // qemu-img reads the context in place of base:allocation: a dirty granule's flag 1 comes back as "data": false.
        var bits = new DirtyBitmap(Size, Granularity);
        bits.Set(Granularity, Granularity);
        await using var served = await Served.StartAsync(bits);
        string json = await Processes.OkAsync("qemu-img", "map", "--output=json", "--image-opts",
            $"driver=nbd,server.type=unix,server.path={served.Socket},export=disk,x-dirty-bitmap=qemu:dirty-bitmap:t0");
        var dirty = System.Text.Json.JsonDocument.Parse(json).RootElement.EnumerateArray()
            .Where(e => !e.GetProperty("data").GetBoolean())
            .Select(e => (e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64())).ToList();
        Assert.Equal([(Granularity, Granularity)], dirty);
    }

    [Fact]
    public async Task AMarkMadeAfterTheConnectionOpenedIsSeenByItsNextQuery()
    {
        var bits = new DirtyBitmap(Size, Granularity);
        await using var served = await Served.StartAsync(bits);
        await using var client = await NbdClient.ConnectAsync(NbdEndpoint.Unix(served.Socket), "disk",
            new NbdClientOptions { MetaContexts = ["qemu:dirty-bitmap:t0"] });
        Assert.Equal([new NbdStatusExtent((uint)Size, 0)], (await client.BlockStatusAsync(0, (uint)Size))["qemu:dirty-bitmap:t0"]);
        bits.Set(2 * Granularity, 10);
        Assert.Equal(
            [new NbdStatusExtent((uint)(2 * Granularity), 0), new NbdStatusExtent((uint)Granularity, NbdWire.StateDirty), new NbdStatusExtent((uint)(Size - 3 * Granularity), 0)],
            (await client.BlockStatusAsync(0, (uint)Size))["qemu:dirty-bitmap:t0"]);
    }

    [Fact]
    public async Task ARunThatStartsInsideAGranuleIsCutAtTheRequest()
    {
        var bits = new DirtyBitmap(Size, Granularity);
        bits.Set(0, Granularity);
        var context = new DirtyBitmapContext("t0", bits);
        Assert.Equal(new NbdMetaExtent(Granularity - 4096, NbdWire.StateDirty), await context.GetExtentAsync(4096, Size - 4096, default));
        Assert.Equal(new NbdMetaExtent(512, NbdWire.StateDirty), await context.GetExtentAsync(4096, 512, default));
    }

    private static string[] Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(3))).ToArray();

    /// <summary>A memory disk exported as "disk" offering the bitmap as qemu:dirty-bitmap:t0.</summary>
    private sealed class Served : IAsyncDisposable
    {
        private readonly TempFolder _folder = new();
        private NbdServer? _server;

        public string Socket => _folder.File("nbd.sock");

        public string Uri => $"nbd+unix:///disk?socket={Socket}";

        public static Task<Served> StartAsync(DirtyBitmap bits)
        {
            var export = new NbdExport("disk", new RequestGate(new MemoryNode(Size)));
            export.AddMetaContext(new DirtyBitmapContext("t0", bits));
            var served = new Served();
            served._server = new NbdServer(new SingleExportCatalog(export));
            served._server.Listen(NbdEndpoint.Unix(served.Socket));
            return Task.FromResult(served);
        }

        public async ValueTask DisposeAsync()
        {
            if (_server is not null)
            {
                await _server.DisposeAsync();
            }

            _folder.Dispose();
        }
    }
}
