using System.Text;

namespace Strata.Bench.Live;

/// <summary>
/// How fast a merge copies an overlay into its base with no guest load: Strata's live block-commit
/// and qemu-storage-daemon's, and the offline commits of both tools, on fresh copies of one template
/// (the copy is not timed). The first run of each tool checks the merged base against the template
/// (qemu-img compare), so the rows time correct merges.
/// </summary>
internal static class MergeSpeedBench
{
    public static async Task<string> MeasureAsync(LiveWork work, CancellationToken cancellationToken)
    {
        var options = work.Options;
        var template = await work.TemplateAsync(cancellationToken);
        var (strata, prefix) = StrataBinary.Locate(options.Strata);
        MergeTool Offline(string name, string program, string[] args) => new(name, "process wall time", async (disk, _) =>
        {
            var result = await BenchProcess.RunAsync(program, [.. args, disk.Path], timeout: options.MergeTimeout, cancellationToken: cancellationToken);
            return result.ExitCode == 0 ? new MergeResult(null, result.Wall, null) : new MergeResult(null, null, result.Stderr.Trim());
        });
        List<MergeTool> tools =
        [
            .. work.Servers.Select(s => new MergeTool($"{s.Name} block-commit", "block-commit → READY → job-complete → COMPLETED", async (disk, folder) =>
            {
                await using var server = s.Create(folder);
                await server.StartAsync(disk, cancellationToken);
                return await server.MergeAsync(options.MergeTimeout, cancellationToken);
            })),
            Offline("strata img commit -d", strata, [.. prefix, "img", "commit", "-q", "-d", "-f", "qcow2"]),
            Offline("qemu-img commit -d", "qemu-img", ["commit", "-q", "-d", "-f", "qcow2"]),
        ];

        var results = tools.ToDictionary(t => t.Name, _ => new List<MergeResult>());
        var verified = new Dictionary<string, string>();
        await work.EachRunAsync("merge-speed", tools, t => t.Name, async (tool, folder) =>
        {
            var disk = await template.CopyToAsync(folder, cancellationToken);
            var result = await tool.Merge(disk, folder);
            results[tool.Name].Add(result);
            if (result.Failure is not null)
            {
                Console.Error.WriteLine($"merge-speed: {tool.Name}: {result.Failure}");
            }
            else if (!verified.ContainsKey(tool.Name))
            {
                verified[tool.Name] = await template.MatchesAsync(disk.Backing!, cancellationToken) ? "identical" : "**DIFFERS**";
            }
        }, cancellationToken);

        double Seconds(string tool) => BenchStats.Median(Times(results[tool]));
        double Fastest(string tool) => Times(results[tool]).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Min();
        var table = new StringBuilder();
        table.AppendLine("### Merge speed, no guest load");
        table.AppendLine();
        table.AppendLine($"Merged: {template.Description}; a fresh copy per run (copy not timed); {options.Runs} run(s) per tool, alternated. "
            + "Times: median ± half the range of the runs, the fastest run, and every run. The base is checked against the template's content (qemu-img compare) after each tool's first run.");
        table.AppendLine();
        table.AppendLine("| tool | timed | time (s) | fastest (s) | every run (s), fastest first | to READY (s) | MiB/s | merged base vs template | failed runs |");
        table.AppendLine("| --- | --- | ---: | ---: | --- | ---: | ---: | --- | ---: |");
        foreach (var tool in tools)
        {
            var runs = results[tool.Name];
            var ready = runs.Where(r => r.Ready is not null).Select(r => r.Ready!.Value.TotalSeconds).ToList();
            double seconds = Seconds(tool.Name);
            string every = string.Join(" ", Times(runs).Order().Select(t => Cells.Number(t)));
            table.AppendLine($"| {tool.Name} | {tool.Timed} | {Cells.WithSpread(Times(runs))} | {Cells.Number(Fastest(tool.Name))} | {every} | {(ready.Count > 0 ? Cells.Number(BenchStats.Median(ready)) : "")} | "
                + $"{Cells.Number((template.DataSize >> 20) / seconds, "0")} | {verified.GetValueOrDefault(tool.Name, "not checked")} | {runs.Count(r => !r.Converged)} |");
        }

        table.AppendLine();
        table.AppendLine("| comparison (time of the other / time of Strata; above 1.00× Strata is faster) | ratio of medians | ratio of fastest runs |");
        table.AppendLine("| --- | ---: | ---: |");
        Compare("strata block-commit vs qsd block-commit", tools[1].Name, tools[0].Name);
        Compare("strata block-commit vs qemu-img commit", tools[3].Name, tools[0].Name);
        Compare("strata img commit vs qemu-img commit", tools[3].Name, tools[2].Name);
        return table.ToString();

        void Compare(string what, string other, string ours) =>
            table.AppendLine($"| {what} | {Cells.Ratio(Seconds(other), Seconds(ours))} | {Cells.Ratio(Fastest(other), Fastest(ours))} |");
    }

    private static List<double> Times(List<MergeResult> runs) => [.. runs.Select(r => r.Completed?.TotalSeconds ?? double.NaN)];

    /// <summary>One row: a way to merge the overlay of a <see cref="DiskImage"/> into its base, and what its time covers.</summary>
    private sealed record MergeTool(string Name, string Timed, Func<DiskImage, string, Task<MergeResult>> Merge);
}
