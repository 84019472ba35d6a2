using System.Text;
using System.Text.Json.Nodes;

namespace Strata.Bench.Live;

/// <summary>
/// The memory a dirty bitmap takes per TiB tracked: each server serves a sparse 1 TiB raw image,
/// and its resident memory is read before and after adding one 64 KiB-granularity bitmap, then
/// after the guest has written one 4 KiB block every 2 GiB across the disk: a 4 KiB page of the bit
/// array covers 2 GiB at this granularity, so every page has then been touched (an allocator that
/// maps zeroed pages lazily shows its real cost only then). A raw image keeps format metadata out
/// of the figure. One bit per 64 KiB granule is 2 MiB per TiB.
/// </summary>
internal static class BitmapMemoryBench
{
    private const long DiskSize = 1L << 40;
    private const long Granularity = 64 * 1024;

    // The disk one page of bits covers: 4096 bytes × 8 bits × the granularity.
    private const long PageSpan = 4096 * 8 * Granularity;

    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var results = await work.EachServerRunAsync("bitmap-memory", async (kind, folder) =>
        {
            string image = Path.Combine(folder, "tib.raw");
            using (var file = File.Create(image))
            {
                file.SetLength(DiskSize);
            }

            await using var server = kind.Create(folder);
            await server.StartAsync(new DiskImage(image, "raw"), cancellationToken);
            long before = server.ResidentBytes();
            await server.ExecuteAsync("block-dirty-bitmap-add",
                new JsonObject { ["node"] = server.BitmapNode, ["name"] = "b0", ["granularity"] = Granularity }, cancellationToken);
            long added = server.ResidentBytes();

            // One write per page of bits makes every page of the bit array resident.
            await BenchProcess.RunAsync("fio", [
                "--name=touch", "--ioengine=nbd", $"--uri={server.NbdUri}", "--rw=write", "--bs=4k", "--zonemode=strided",
                "--zonesize=4k", $"--zonerange={PageSpan}", $"--size={DiskSize}", $"--io_size={DiskSize / PageSpan * 4096}", "--iodepth=32", "--output-format=terse",
            ], timeout: TimeSpan.FromMinutes(5), cancellationToken: cancellationToken);
            long touched = server.ResidentBytes();
            return (Added: added - before, Touched: touched - before);
        }, cancellationToken);

        var table = new StringBuilder();
        table.AppendLine("### Memory per TiB tracked (64 KiB granularity)");
        table.AppendLine();
        table.AppendLine($"A sparse 1 TiB raw image served by each server; resident memory (VmRSS) grown by adding one bitmap, and after writing one 4 KiB block "
            + $"every {PageSpan >> 30} GiB (one per page of bits). {work.Options.Runs} run(s), medians. "
            + "One bit per granule is 2.00 MiB per TiB.");
        table.AppendLine();
        table.AppendLine("| server | after add (MiB) | after writes across the disk (MiB) |");
        table.AppendLine("| --- | ---: | ---: |");
        foreach (var server in work.Servers)
        {
            var runs = results[server.Name];
            table.AppendLine($"| {server.Name} | {Cells.Number(BenchStats.Median(runs.Select(r => r.Added / 1048576.0)))} | {Cells.Number(BenchStats.Median(runs.Select(r => r.Touched / 1048576.0)))} |");
        }

        return table.ToString();
    }
}
