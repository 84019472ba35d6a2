using System.Text.Json.Nodes;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>A drive's bitmaps are offered on its export as "qemu:dirty-bitmap:NAME", from the moment they are added to their removal.</summary>
public sealed class DirtyBitmapExportTests
{
    private const long Size = 8 << 20;

    [Fact]
    public async Task NbdinfoMapsABitmapAddedOverQmpWithTheWritesMadeSince()
    {
        await using var d = await LiveDaemon.StartAsync(Size);
        await using var qmp = await d.ConnectQmpAsync();
        await using (var before = await d.ConnectNbdAsync())
        {
            await before.WriteAsync(0, new byte[4096]);
        }

        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0", ["granularity"] = 65536 });
        await using (var guest = await d.ConnectNbdAsync())
        {
            await guest.WriteAsync(3 * 65536 + 10, new byte[65536]);
            await guest.WriteZeroesAsync(Size - 4096, 4096);
        }

        string map = await Processes.OkAsync("nbdinfo", "--map=qemu:dirty-bitmap:b0", Uri(d));
        Assert.Equal(
            ["0 196608 0", "196608 131072 1", $"327680 {Size - 327680 - 65536} 0", $"{Size - 65536} 65536 1"],
            Lines(map));
    }

    [Fact]
    public async Task ARemovedBitmapIsNoLongerListedAndAReaddedOneStartsClean()
    {
        await using var d = await LiveDaemon.StartAsync(Size);
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0" });
        await using (var guest = await d.ConnectNbdAsync())
        {
            await guest.WriteAsync(0, new byte[512]);
        }

        Assert.Contains("qemu:dirty-bitmap:b0", await Processes.OkAsync("nbdinfo", "--list", "--content", Uri(d)));
        await qmp.ExecuteAsync("block-dirty-bitmap-remove", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0" });
        Assert.DoesNotContain("qemu:dirty-bitmap:b0", await Processes.OkAsync("nbdinfo", "--list", Uri(d)));

        await qmp.ExecuteAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = "b0" });
        Assert.Equal([$"0 {Size} 0"], Lines(await Processes.OkAsync("nbdinfo", "--map=qemu:dirty-bitmap:b0", Uri(d))));
    }

    private static string Uri(LiveDaemon d) => $"nbd+unix:///{LiveDaemon.DriveId}?socket={d.NbdSocket}";

    private static string[] Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(3))).ToArray();
}
