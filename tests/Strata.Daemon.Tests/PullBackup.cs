using System.Globalization;
using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// The steps of a pull backup over QMP and NBD (docs/backup-pull.md), the guest writer whose writes
/// are the model of what a bitmap must hold, and the third-party clients that read a view.
/// </summary>
internal static class PullBackup
{
    public const long Granularity = 64 << 10;

    public static readonly TimeSpan EventTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The point in time: a new bitmap starts, the old one stops, the drive switches to a new overlay; all at once.</summary>
    public static Task FreezeAsync(QmpClient qmp, string newBitmap, string oldBitmap, string overlay) =>
        qmp.ExecuteAsync("transaction", new JsonObject
        {
            ["actions"] = new JsonArray(
                Action("block-dirty-bitmap-add", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = newBitmap, ["granularity"] = Granularity }),
                Action("block-dirty-bitmap-disable", new JsonObject { ["node"] = LiveDaemon.DriveId, ["name"] = oldBitmap }),
                Action("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay, ["format"] = "qcow2" })),
        });

    /// <summary>block-export-add of <paramref name="node"/> as the export <paramref name="id"/> (its NBD name too) offering <paramref name="bitmap"/>.</summary>
    public static Task ExportAsync(QmpClient qmp, string id, string node, string bitmap) =>
        qmp.ExecuteAsync("block-export-add", new JsonObject
        {
            ["type"] = "nbd", ["id"] = id, ["node-name"] = node, ["name"] = id, ["bitmaps"] = new JsonArray(bitmap),
        });

    /// <summary>block-export-del and its BLOCK_EXPORT_DELETED event.</summary>
    public static async Task DeleteExportAsync(QmpClient qmp, string id, string mode = "safe")
    {
        await qmp.ExecuteAsync("block-export-del", new JsonObject { ["id"] = id, ["mode"] = mode });
        await qmp.WaitForEventAsync("BLOCK_EXPORT_DELETED", EventTimeout, e => e["data"]!["id"]!.GetValue<string>() == id);
    }

    /// <summary>An active merge of the drive's top into the image below, completed.</summary>
    public static async Task MergeAsync(QmpClient qmp)
    {
        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "merge" });
        await qmp.WaitForEventAsync("BLOCK_JOB_READY", EventTimeout);
        await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "merge" });
        var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", EventTimeout);
        Assert.Null(completed["data"]!["error"]);
    }

    public static string Uri(LiveDaemon d, string export) => $"nbd+unix:///{export}?socket={d.NbdSocket}";

    /// <summary>
    /// Seeded random writes through <paramref name="guest"/>, mirrored into the daemon's model; returns
    /// the ranges written, the model of what a bitmap recording them must hold.
    /// </summary>
    public static async Task<List<(long Offset, int Length)>> WriteAsync(LiveDaemon d, NbdClient guest, int seed, int count)
    {
        var random = new Random(seed);
        var written = new List<(long, int)>();
        for (int i = 0; i < count; i++)
        {
            int length = random.Next(1, 129) * 512;
            long offset = random.NextInt64(0, (d.Model.Length - length) / 512 + 1) * 512;
            var data = new byte[length];
            random.NextBytes(data);
            await guest.WriteAsync(offset, data);
            lock (d.Model)
            {
                data.CopyTo(d.Model, offset);
            }

            written.Add((offset, length));
        }

        return written;
    }

    /// <summary>The granules <paramref name="ranges"/> touch.</summary>
    public static SortedSet<long> Granules(IEnumerable<(long Offset, int Length)> ranges)
    {
        var granules = new SortedSet<long>();
        foreach (var (offset, length) in ranges)
        {
            for (long g = offset / Granularity; g <= (offset + length - 1) / Granularity; g++)
            {
                granules.Add(g);
            }
        }

        return granules;
    }

    /// <summary>The granules <c>nbdinfo --map=qemu:dirty-bitmap:NAME</c> reports dirty.</summary>
    public static async Task<SortedSet<long>> DirtyGranulesAsync(LiveDaemon d, string export, string bitmap)
    {
        string map = await Processes.OkAsync("nbdinfo", $"--map=qemu:dirty-bitmap:{bitmap}", Uri(d, export));
        var granules = new SortedSet<long>();
        foreach (var line in map.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long offset = long.Parse(fields[0], CultureInfo.InvariantCulture);
            long length = long.Parse(fields[1], CultureInfo.InvariantCulture);
            if (fields[2] == "1")
            {
                for (long g = offset / Granularity; g < (offset + length) / Granularity; g++)
                {
                    granules.Add(g);
                }
            }
        }

        return granules;
    }

    /// <summary>
    /// An incremental pull with python3-libnbd: reads the bitmap's block status over the whole export
    /// and copies exactly its dirty extents onto <paramref name="target"/> (the previous backup).
    /// Returns the bytes copied.
    /// </summary>
    public static async Task<long> CopyDirtyAsync(LiveDaemon d, string export, string bitmap, string target)
    {
        string script = $$"""
            import os
            context = "qemu:dirty-bitmap:{{bitmap}}"
            h.add_meta_context(context)
            h.connect_uri("{{Uri(d, export)}}")
            size = h.get_size()
            runs = []
            def extent(name, offset, entries, err):
                if name == context:
                    for i in range(0, len(entries), 2):
                        runs.append((offset, entries[i], entries[i + 1]))
                        offset += entries[i]
                return 0
            at = 0
            while at < size:
                h.block_status(min(size - at, 1 << 30), at, extent)
                at = runs[-1][0] + runs[-1][1]
            fd = os.open("{{target}}", os.O_WRONLY)
            copied = 0
            for offset, length, flags in runs:
                length = min(length, size - offset)
                if flags & 1:
                    for piece in range(offset, offset + length, 1 << 22):
                        n = min(1 << 22, offset + length - piece)
                        os.pwrite(fd, h.pread(n, piece), piece)
                    copied += length
            os.close(fd)
            print(copied)
            """;
        return long.Parse((await Processes.NbdshAsync("-c", script)).Trim(), CultureInfo.InvariantCulture);
    }

    /// <summary>Writes the model as it is now to <paramref name="path"/>: the reference a backup of this point must equal.</summary>
    public static string SaveModel(LiveDaemon d, string path)
    {
        lock (d.Model)
        {
            File.WriteAllBytes(path, d.Model);
        }

        return path;
    }

    public static void AssertSameImage(string expected, string actual, int seed) =>
        Assert.True(Processes.Run("qemu-img", "compare", "-q", "-f", "raw", "-F", "raw", expected, actual).ExitCode == 0,
            $"{actual} differs from {expected} (seed {seed})");

    private static JsonObject Action(string type, JsonObject data) => new() { ["type"] = type, ["data"] = data };
}
