using System.Globalization;
using System.Numerics;
using System.Text.Json.Nodes;
using Strata.Block.Bitmaps;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Daemon.Tests;

/// <summary>
/// The crash guarantee of a dirty_bitmap file (DESIGN.md rule 3; docs/formats/dirty-bitmap.md, "Crash
/// safety") against a real `strata serve --bitmap` killed with SIGKILL while fio writes over NBD: every
/// 4 KiB granule whose bytes differ from the image's seeded initial pattern is dirty in the file as a
/// backup loads it (`strata img map -U`), after each of several kills, and a restart on the same file
/// goes on tracking: the old marks stay and new writes are marked exactly.
/// </summary>
public sealed class BitmapCrashUnderFioTests(ITestOutputHelper output)
{
    private const long DiskSize = 192 << 20;
    private const int Granularity = 4096;
    private const int Chunk = 1 << 20;
    private const int Kills = 3;

    // fio writes across the boundary between the first two 64 MiB intent regions; the last region
    // sees no write before the restart's, so there the saved bits must equal the restart's writes.
    private const long FioOffset = 32 << 20;
    private const long FioSize = 64 << 20;
    private const long Untouched = 128 << 20;

    [Theory]
    [InlineData(1201, 1, "4k")]
    [InlineData(1202, 32, "4k")]
    [InlineData(1203, 1, "mixed")]
    [InlineData(1204, 32, "mixed")]
    public async Task EveryGranuleChangedBeforeASigkillUnderFioIsDirtyInTheRecoveredFileAndARestartGoesOnTracking(int seed, int iodepth, string sizes)
    {
        using var folder = new TempFolder("bmkill");
        string image = folder.File("foo.img"), bitmapFile = folder.File("t0.dbmp");
        await WritePatternAsync(image, seed);
        (await Processes.StrataAsync("img", "create", "-f", "dirty_bitmap", "-o", $"cluster_size={Granularity}", bitmapFile, DiskSize.ToString(CultureInfo.InvariantCulture))).AssertSuccess();
        string[] tracking = ["--bitmap", $"drive={LiveDaemon.DriveId},file={bitmapFile}"];
        var random = new Random(seed);
        var earlier = new DirtyBitmap(DiskSize, Granularity);
        DirtyBitmap changed = earlier;

        for (int kill = 0; kill < Kills; kill++)
        {
            var written = File.GetLastWriteTimeUtc(image);
            await using (var daemon = await DaemonProcess.StartAsync(folder.Path, image, "raw", tracking))
            {
                using var stopFio = new CancellationTokenSource();
                var fio = Processes.RunAsync("fio", FioArguments(daemon, seed * 10 + kill, iodepth, sizes), ProcessOptions.Default, stopFio.Token);

                // Kill once fio's writes reach the image (its mtime moves), at a seeded moment after.
                for (int wait = 0; wait < 600 && File.GetLastWriteTimeUtc(image) == written && !fio.IsCompleted; wait++)
                {
                    await Task.Delay(50);
                }

                if (fio.IsCompleted)
                {
                    Assert.Fail($"fio ended before the kill (seed {seed}):\n{await fio}");
                }

                await Task.Delay(random.Next(0, 150));
                await daemon.KillAsync();

                // fio fails on the lost connection; what it did is judged by the image, not its exit code.
                await Task.WhenAny(fio, Task.Delay(TimeSpan.FromSeconds(30)));
                await stopFio.CancelAsync();
                await fio.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            changed = await ChangedGranulesAsync(image, seed);
            var recovered = await LoadAsync(bitmapFile);
            Assert.Equal("in use", await StateAsync(bitmapFile));
            output.WriteLine($"seed {seed}, kill {kill}: {changed.DirtyBytes / Granularity} granules changed, recovered bitmap {recovered.DirtyBytes / Granularity} granules");
            Assert.True(changed.DirtyBytes > 0, $"seed {seed}, kill {kill}: fio changed nothing, so the kill tested nothing");
            Assert.True(Missing(changed, recovered) == 0,
                $"seed {seed}, kill {kill}: {Missing(changed, recovered)} changed granules are not dirty in the recovered bitmap");
            Assert.True(Missing(earlier, recovered) == 0, $"seed {seed}, kill {kill}: marks recovered after an earlier kill were lost");
            earlier = recovered;
        }

        // A restart on the same file: it loads the recovered superset and goes on tracking.
        var restartWrites = new DirtyBitmap(DiskSize, Granularity);
        await using (var daemon = await DaemonProcess.StartAsync(folder.Path, image, "raw", tracking))
        {
            await using (var guest = await daemon.ConnectNbdAsync())
            {
                for (int i = 0; i < 40; i++)
                {
                    int length = random.Next(1, 64 << 10);
                    long offset = random.NextInt64(Untouched, DiskSize - length);
                    var data = new byte[length];
                    random.NextBytes(data);
                    await guest.WriteAsync(offset, data);
                    restartWrites.Set(offset, length);
                }
            }

            Assert.Equal(0, await daemon.QuitAsync());
        }

        var saved = await LoadAsync(bitmapFile);
        Assert.Equal("consistent", await StateAsync(bitmapFile));
        Assert.True(Missing(earlier, saved) == 0, $"seed {seed}: the restart lost marks recovered after the kills");
        Assert.True(Missing(changed, saved) == 0, $"seed {seed}: a granule fio changed is not dirty after the restart");
        var tail = saved.DirtyRuns().Where(r => r.Offset >= Untouched);
        Assert.True(restartWrites.DirtyRuns().Where(r => r.Offset >= Untouched).SequenceEqual(tail),
            $"seed {seed}: after the restart the bitmap does not hold exactly the new writes where fio never wrote");
    }

    private static string[] FioArguments(DaemonProcess daemon, int seed, int iodepth, string sizes) =>
    [
        "--name=guest", "--ioengine=nbd", $"--uri=nbd+unix:///{LiveDaemon.DriveId}?socket={daemon.NbdSocket}",
        "--rw=randwrite", sizes == "4k" ? "--bs=4k" : "--bssplit=512/10:4k/40:16k/20:64k/20:256k/10", "--blockalign=512",
        $"--iodepth={iodepth}", $"--offset={FioOffset}", $"--size={FioSize}", $"--randseed={seed}",
        "--refill_buffers", "--buffer_compress_percentage=0", "--time_based", "--runtime=60",
    ];

    /// <summary>The image's initial content, chunk <paramref name="index"/>: seeded bytes, regenerated to compare.</summary>
    private static byte[] PatternChunk(int seed, long index)
    {
        var bytes = new byte[Chunk];
        new Random(HashCode.Combine(seed, index)).NextBytes(bytes);
        return bytes;
    }

    private static async Task WritePatternAsync(string image, int seed)
    {
        await using var file = new FileStream(image, FileMode.CreateNew, FileAccess.Write);
        for (long index = 0; index < DiskSize / Chunk; index++)
        {
            await file.WriteAsync(PatternChunk(seed, index));
        }
    }

    /// <summary>Every granule of <paramref name="image"/> whose bytes differ from the initial pattern.</summary>
    private static async Task<DirtyBitmap> ChangedGranulesAsync(string image, int seed)
    {
        var changed = new DirtyBitmap(DiskSize, Granularity);
        var now = new byte[Chunk];
        await using var file = new FileStream(image, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        Assert.Equal(DiskSize, file.Length);
        for (long index = 0; index < DiskSize / Chunk; index++)
        {
            await file.ReadExactlyAsync(now);
            var then = PatternChunk(seed, index);
            for (int at = 0; at < Chunk; at += Granularity)
            {
                if (!now.AsSpan(at, Granularity).SequenceEqual(then.AsSpan(at, Granularity)))
                {
                    changed.Set(index * Chunk + at, Granularity);
                }
            }
        }

        return changed;
    }

    /// <summary>The bitmap as a backup program loads it: `strata img map --output=json -U` (a crashed file's recovered superset).</summary>
    private static async Task<DirtyBitmap> LoadAsync(string bitmapFile)
    {
        var map = JsonNode.Parse((await Processes.StrataAsync("img", "map", "--output=json", "-U", bitmapFile)).AssertSuccess().Stdout)!.AsArray();
        var bits = new DirtyBitmap(DiskSize, Granularity);
        foreach (var extent in map.Where(e => e!["dirty"]!.GetValue<bool>()))
        {
            bits.Set(extent!["start"]!.GetValue<long>(), extent["length"]!.GetValue<long>());
        }

        return bits;
    }

    private static async Task<string> StateAsync(string bitmapFile) =>
        JsonNode.Parse((await Processes.StrataAsync("img", "info", "--output=json", bitmapFile)).AssertSuccess().Stdout)!
            ["format-specific"]!["data"]!["state"]!.GetValue<string>();

    /// <summary>How many granules are dirty in <paramref name="required"/> and clean in <paramref name="actual"/> (same geometry).</summary>
    private static long Missing(DirtyBitmap required, DirtyBitmap actual)
    {
        long missing = 0;
        for (int w = 0; w < required.Words.Length; w++)
        {
            missing += BitOperations.PopCount(required.Words[w] & ~actual.Words[w]);
        }

        return missing;
    }
}
