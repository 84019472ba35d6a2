using System.Diagnostics;
using Strata.Block.Bitmaps;
using Strata.Formats;

namespace Strata.Daemon.Tests;

/// <summary>
/// The daemon writes the bits of the bitmap files it tracks on an interval, so a reader (and crash
/// recovery) sees the granules written instead of whole intent regions while tracking goes on.
/// </summary>
public sealed class BitmapCheckpointTests
{
    // Two 64 MiB intent regions: until a checkpoint, a reader sees the written region whole.
    private const long Size = 128 << 20;
    private const long Region = 64 << 20;

    [Fact]
    public async Task ATrackedFileGetsTheWritesBitsAtTheNextCheckpointWhileStillActive()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { BitmapCheckpointInterval = TimeSpan.FromMilliseconds(200) }, Size);
        string file = d.Folder.File("t0.dbmp");
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("x-strata-set-dirty", new System.Text.Json.Nodes.JsonObject { ["device"] = LiveDaemon.DriveId, ["file"] = file });
        await using (var guest = await d.ConnectNbdAsync())
        {
            await guest.WriteAsync(3 << 20, new byte[4096]);
        }

        // Bounded: checkpoints come every 200 ms; ten seconds is far beyond any.
        var clock = Stopwatch.StartNew();
        IReadOnlyList<(long, long)> stored = [];
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            stored = await StoredRunsAsync(file);
            if (stored.Count > 0 && stored[0] != (0L, Region))
            {
                break;
            }

            await Task.Delay(50);
        }

        Assert.Equal([(3L << 20, 64L << 10)], stored);
        await using var view = await ImageOpener.OpenAsync(file, new ImageOpenOptions { ReadOnly = true, ForceShare = true, AllowNonDisk = true });
        Assert.Equal(BitmapStoreState.Active, ((IBitmapImage)view).State);
    }

    [Fact]
    public async Task WithoutCheckpointsTheFileKeepsItsBitsUntilTrackingStops()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { BitmapCheckpointInterval = Timeout.InfiniteTimeSpan }, Size);
        string file = d.Folder.File("t0.dbmp");
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("x-strata-set-dirty", new System.Text.Json.Nodes.JsonObject { ["device"] = LiveDaemon.DriveId, ["file"] = file });
        await using (var guest = await d.ConnectNbdAsync())
        {
            await guest.WriteAsync(3 << 20, new byte[4096]);
        }

        await Task.Delay(500);
        Assert.Equal([(0L, Region)], await StoredRunsAsync(file));
        await d.Daemon.StopAsync();
        Assert.Equal([(3L << 20, 64L << 10)], await StoredRunsAsync(file));
    }

    /// <summary>
    /// The dirty runs a reader of the file sees, as `img map -U` reads them: the bits last written,
    /// and while tracked every intent region written since (cleared by a checkpoint).
    /// </summary>
    private static async Task<IReadOnlyList<(long, long)>> StoredRunsAsync(string file)
    {
        await using var view = await ImageOpener.OpenAsync(file, new ImageOpenOptions { ReadOnly = true, ForceShare = true, AllowNonDisk = true });
        return [.. ((IBitmapImage)view).Bits.DirtyRuns()];
    }
}
