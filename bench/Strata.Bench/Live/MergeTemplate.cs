using System.Globalization;
using System.Text;

namespace Strata.Bench.Live;

/// <summary>
/// What the merge benchmarks merge: a sparse raw base and a qcow2 overlay (64 KiB clusters) holding
/// distinct 64 KiB-aligned clusters chosen by a seeded generator, each filled with a byte pattern.
/// Written once by qemu-io (so neither server under test wrote it); every run merges a fresh copy.
/// </summary>
internal sealed record MergeTemplate(string Folder, long BaseSize, long DataSize, int Seed)
{
    public const int ClusterSize = 65536;

    public string BasePath => Path.Combine(Folder, BaseName);

    public string OverlayPath => Path.Combine(Folder, OverlayName);

    public string Description =>
        $"{DataSize >> 20} MiB in {DataSize / ClusterSize} random 64 KiB clusters (seed {Seed}) in a qcow2 overlay over a sparse {BaseSize >> 30} GiB raw base";

    private static string BaseName => "base.raw";

    private static string OverlayName => "overlay.qcow2";

    public static async Task<MergeTemplate> BuildAsync(string folder, long baseSize, long dataSize, int seed, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(folder);
        var template = new MergeTemplate(folder, baseSize, dataSize, seed);
        using (var file = File.Create(template.BasePath))
        {
            file.SetLength(baseSize);
        }

        // The backing file is recorded by its bare name, so a copy in another folder backs onto its own base.
        await Run("qemu-img", ["create", "-q", "-f", "qcow2", "-o", $"cluster_size={ClusterSize}", "-b", BaseName, "-F", "raw", template.OverlayPath], null, cancellationToken);
        await Run("qemu-io", ["-f", "qcow2", template.OverlayPath], template.Writes(), cancellationToken);
        return template;
    }

    /// <summary>A fresh copy of base and overlay in <paramref name="folder"/> (holes kept).</summary>
    public async Task<DiskImage> CopyToAsync(string folder, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(folder);
        await Run("cp", ["--sparse=always", BasePath, OverlayPath, folder], null, cancellationToken);
        return new DiskImage(Path.Combine(folder, OverlayName), "qcow2", Path.Combine(folder, BaseName));
    }

    /// <summary>Whether a merged base reads exactly as the template's overlay (qemu-img compare).</summary>
    public async Task<bool> MatchesAsync(string mergedBase, CancellationToken cancellationToken)
    {
        var result = await BenchProcess.RunAsync("qemu-img", ["compare", "-q", "-f", "raw", "-F", "qcow2", mergedBase, OverlayPath], cancellationToken: cancellationToken);
        return result.ExitCode == 0;
    }

    private static async Task Run(string program, IEnumerable<string> args, string? stdin, CancellationToken cancellationToken)
    {
        var result = await BenchProcess.RunAsync(program, args, stdin, cancellationToken: cancellationToken);
        if (result.ExitCode != 0 || result.Stderr.Length > 0)
        {
            throw new InvalidOperationException($"{program} failed ({result.ExitCode}): {result.Stderr.Trim()}");
        }
    }

    /// <summary>qemu-io commands: one write per chosen cluster, in random order (a partial Fisher–Yates shuffle).</summary>
    private string Writes()
    {
        long clusters = BaseSize / ClusterSize;
        int count = (int)(DataSize / ClusterSize);
        var index = new long[clusters];
        for (long i = 0; i < clusters; i++)
        {
            index[i] = i;
        }

        var random = new Random(Seed);
        var commands = new StringBuilder(count * 40);
        for (int i = 0; i < count; i++)
        {
            long j = random.NextInt64(i, clusters);
            (index[i], index[j]) = (index[j], index[i]);
            commands.Append(CultureInfo.InvariantCulture, $"write -q -P {1 + (i % 255)} {index[i] * ClusterSize} {ClusterSize}\n");
        }

        return commands.ToString();
    }
}
