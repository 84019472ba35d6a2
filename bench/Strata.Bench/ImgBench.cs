using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Strata.Bench;

/// <summary>
/// <c>strata img bench</c> against <c>qemu-img bench</c>: the same arguments on the same files, runs
/// alternated (strata, qemu, strata, qemu …), the median of each, and the ratio strata/qemu per row
/// (above 1.0 means Strata is faster), printed as a Markdown table.
/// </summary>
/// <remarks>
/// qemu-img bench has no random mode: it advances the offset by the step (-S) after every request and
/// wraps it modulo the image size. A step that is an odd prime multiple of 4 KiB on an image of 2^k
/// 4 KiB blocks visits every block once per pass in a scattered order; both tools get the same step.
/// The qcow2 image is fully allocated before the runs (converted from a raw file full of data), so
/// the numbers are steady state, never cluster allocation. <c>--cache none</c> gives both tools
/// <c>-t none</c> (O_DIRECT): then the images must be on a file system that really does direct I/O,
/// so the default folder becomes /var/tmp (tmpfs keeps the data in memory whatever the flag).
/// </remarks>
internal static partial class ImgBench
{
    private const long RandomStep = 4096L * 7919;

    public static async Task<int> RunAsync(string[] args)
    {
        string? dir = null;
        string cache = "writeback";
        int runs = 5;
        long size = 1L << 30;
        double seconds = 1.0;
        string? output = null;
        string? strata = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--dir":
                    dir = args[++i];
                    break;
                case "--runs":
                    runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--size":
                    size = long.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--quick":
                    seconds = 0.25;
                    runs = 3;
                    break;
                case "--seconds":
                    seconds = double.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--out":
                    output = args[++i];
                    break;
                case "--strata":
                    strata = args[++i];
                    break;
                case "--cache":
                    cache = args[++i];
                    if (cache is not ("writeback" or "none"))
                    {
                        Console.Error.WriteLine($"img bench: --cache takes writeback or none, not '{cache}'");
                        return 2;
                    }

                    break;
                default:
                    Console.Error.WriteLine($"img bench: unknown option '{args[i]}'");
                    return 2;
            }
        }

        dir ??= cache == "none" ? "/var/tmp" : "/dev/shm";
        if (cache == "none" && new DriveInfo(dir).DriveFormat == "tmpfs")
        {
            Console.Error.WriteLine($"img bench: warning: {dir} is tmpfs, which keeps data in memory even with O_DIRECT; the -t none rows will measure no disk");
        }

        var (strataProgram, strataPrefix) = StrataBinary.Locate(strata);
        string work = Path.Combine(dir, $"strata-img-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(work);
        try
        {
            string raw = Path.Combine(work, "disk.raw");
            string qcow2 = Path.Combine(work, "disk.qcow2");
            Console.Error.WriteLine($"img bench: preparing {size >> 20} MiB raw and fully allocated qcow2 (64 KiB clusters) in {work}");
            DataFile.Fill(raw, size);
            var convert = await BenchProcess.RunAsync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536", raw, qcow2]);
            if (convert.ExitCode != 0)
            {
                Console.Error.WriteLine($"img bench: qemu-img convert failed: {convert.Stderr.Trim()}");
                return 1;
            }

            var rows = new List<string>();
            foreach (var shape in Cases(cache))
            {
                string image = shape.Format == "raw" ? raw : qcow2;
                var c = await CalibrateAsync(shape, image, seconds);
                var strataRates = new List<double>();
                var qemuRates = new List<double>();
                for (int run = 0; run < runs; run++)
                {
                    strataRates.Add(await MeasureAsync(strataProgram, [.. strataPrefix, "img", .. c.Arguments(image)], c));
                    qemuRates.Add(await MeasureAsync("qemu-img", c.Arguments(image), c));
                }

                double s = BenchStats.Median(strataRates);
                double q = BenchStats.Median(qemuRates);
                string unit = c.ReportsIops ? "IOPS" : "MB/s";
                string Shown(double rate, List<double> all) => double.IsNaN(rate) ? "failed" : $"{rate:N0} {unit} ±{BenchStats.Spread(all, rate):0}%";
                string ratio = double.IsNaN(s) || double.IsNaN(q) || q == 0 ? "n/a" : $"{(s / q).ToString("0.00", CultureInfo.InvariantCulture)}×";
                string row = $"| {c.Format} | {c.Pattern} | {c.Depth} | {c.Count} | {Shown(s, strataRates)} | {Shown(q, qemuRates)} | {ratio} |";
                Console.Error.WriteLine(row);
                rows.Add(row);
            }

            var table = new StringBuilder();
            table.AppendLine($"Runs per row: {runs} of each tool, alternated; median shown with ± half the range of the runs. Images in {dir}, {size >> 20} MiB; about {seconds} s per run; both tools with -t {cache}.");
            table.AppendLine();
            table.AppendLine("| format | workload | depth | requests | strata img bench | qemu-img bench | strata/qemu |");
            table.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
            foreach (string row in rows)
            {
                table.AppendLine(row);
            }

            Console.Write(table.ToString());
            if (output is not null)
            {
                await File.WriteAllTextAsync(output, table.ToString());
            }

            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static IEnumerable<ImgBenchCase> Cases(string cache)
    {
        foreach (string format in new[] { "raw", "qcow2" })
        {
            foreach (int depth in new[] { 1, 32 })
            {
                yield return new ImgBenchCase(format, "4 KiB random read", 4096, RandomStep, false, depth, 2000, cache);
                yield return new ImgBenchCase(format, "4 KiB random write", 4096, RandomStep, true, depth, 2000, cache);
                yield return new ImgBenchCase(format, "64 KiB sequential read", 65536, 65536, false, depth, 1000, cache);
                yield return new ImgBenchCase(format, "64 KiB sequential write", 65536, 65536, true, depth, 1000, cache);
            }
        }
    }

    /// <summary>
    /// Sizes a row so that one qemu-img run takes about <paramref name="seconds"/>: a probe run of the
    /// case's starting count, scaled. Both tools then get the same count.
    /// </summary>
    private static async Task<ImgBenchCase> CalibrateAsync(ImgBenchCase probe, string image, double seconds)
    {
        double rate = await MeasureAsync("qemu-img", probe.Arguments(image), probe);
        if (double.IsNaN(rate))
        {
            return probe;
        }

        double requestsPerSecond = probe.ReportsIops ? rate : rate * 1e6 / probe.BufferSize;
        int count = (int)Math.Clamp(requestsPerSecond * seconds, 1000, 2_000_000);
        return probe with { Count = count };
    }

    /// <summary>One run: the rate from the tool's own "Run completed in N seconds" (start-up excluded).</summary>
    private static async Task<double> MeasureAsync(string program, IEnumerable<string> args, ImgBenchCase c)
    {
        var result = await BenchProcess.RunAsync(program, args);
        if (result.ExitCode != 0)
        {
            Console.Error.WriteLine($"img bench: {program} failed ({result.ExitCode}): {result.Stderr.Trim()}");
            return double.NaN;
        }

        var match = CompletedIn().Match(result.Stdout);
        if (!match.Success)
        {
            Console.Error.WriteLine($"img bench: {program} did not report its run time; output: {result.Stdout.Trim()}");
            return double.NaN;
        }

        return c.Rate(double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"completed in ([0-9]+(?:\.[0-9]+)?) seconds")]
    private static partial Regex CompletedIn();
}
