using System.Diagnostics;
using Strata.Block;
using Strata.Block.Graph;
using Strata.Block.Live;
using Strata.Formats;

namespace Strata.Daemon.Live;

/// <summary>
/// Takes one live snapshot of a tiny scratch drive, in the background, when the daemon starts: the
/// first real snapshot then finds its code (image create and open, the switch, the overlay's first
/// allocating write) loaded and compiled, instead of paying for that while the user's command waits
/// (about 20 ms of a 30 ms first snapshot on a 2-core machine). The scratch drive lives in a private
/// temporary folder, removed at the end; it is never exported and no user drive is involved.
/// </summary>
internal static class SnapshotWarmUp
{
    private const long Size = 1 << 20;
    private const int Block = 4096;

    public static async Task RunAsync(ILayerOpener opener, Action<string>? log)
    {
        // Off the caller's path: the daemon is listening by now and serves guests meanwhile.
        await Task.Yield();
        long start = Stopwatch.GetTimestamp();
        DirectoryInfo? folder = null;
        try
        {
            folder = Directory.CreateTempSubdirectory("strata-warm-up-");
            string image = Path.Combine(folder.FullName, "disk.img");
            await ImageCreator.CreateAsync(image, ImageOpener.Raw, Size, null, null);
            await using var drive = await Drive.OpenAsync("warm-up", image, new LayerOpenOptions { Format = ImageOpener.Raw }, opener);
            await Drive.SnapshotAsync([new SnapshotRequest(drive, Path.Combine(folder.FullName, "overlay.qcow2"), SnapshotMode.AbsolutePaths)]);

            // An allocating write that copies the rest of its cluster from the old image, as the
            // guest's first writes after a snapshot do.
            var buffer = new byte[Block];
            await drive.Gate.WriteAsync(Block, buffer);
            await drive.Gate.ReadAsync(0, buffer);
            await drive.Gate.FlushAsync();
            log?.Invoke($"snapshot path warmed up in {Stopwatch.GetElapsedTime(start).TotalMilliseconds:0.0} ms");
        }
        catch (Exception e) when (e is BlockException or IOException or UnauthorizedAccessException)
        {
            // Only a warm-up: a real snapshot reports its own errors.
            log?.Invoke($"snapshot warm-up failed: {e.Message}");
        }
        finally
        {
            try
            {
                folder?.Delete(recursive: true);
            }
            catch (IOException e)
            {
                log?.Invoke($"snapshot warm-up: could not remove {folder!.FullName}: {e.Message}");
            }
        }
    }
}
