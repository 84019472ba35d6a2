using System.Globalization;

namespace Strata.Bench.Live;

/// <summary>The options every live benchmark takes; <c>--quick</c> shrinks everything to a smoke run.</summary>
internal sealed class LiveOptions
{
    /// <summary>Where the images and sockets live (tmpfs by default: no disk in the measurement).</summary>
    public string Dir { get; private set; } = "/dev/shm";

    /// <summary>Runs per server and row; servers alternate within each run.</summary>
    public int Runs { get; private set; } = 3;

    public bool Quick { get; private set; }

    /// <summary>A file the tables are appended to, besides stdout.</summary>
    public string? Output { get; private set; }

    public string? Strata { get; private set; }

    /// <summary>Chooses the clusters of the merge benchmarks' overlay.</summary>
    public int Seed { get; private set; } = 20261126;

    /// <summary>How long a merge may take before it is reported as not converging and cancelled.</summary>
    public TimeSpan MergeTimeout { get; private set; } = TimeSpan.FromSeconds(120);

    /// <summary>The length of each fio phase of the snapshot-cost benchmark.</summary>
    public TimeSpan Phase { get; private set; } = TimeSpan.FromSeconds(3);

    /// <summary>The raw image of the snapshot benchmarks.</summary>
    public long DiskSize { get; private set; } = 1L << 30;

    /// <summary>The raw base of the merge benchmarks (sparse).</summary>
    public long MergeBaseSize { get; private set; } = 4L << 30;

    /// <summary>The data the merge benchmarks' overlay holds, in 64 KiB clusters.</summary>
    public long MergeDataSize { get; private set; } = 1L << 30;

    public int Snapshots { get; private set; } = 20;

    /// <summary>The raw image of the backup benchmarks (written throughout).</summary>
    public long BackupDiskSize { get; private set; } = 4L << 30;

    public static string Usage =>
        "[--dir DIR] [--runs N] [--quick] [--out FILE] [--strata PATH] [--seed N] [--merge-timeout S] [--phase S]";

    /// <summary>Parses the options; null (after a message on stderr) if one is unknown.</summary>
    public static LiveOptions? Parse(string command, string[] args)
    {
        var o = new LiveOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--dir":
                    o.Dir = Next();
                    break;
                case "--runs":
                    o.Runs = int.Parse(Next(), CultureInfo.InvariantCulture);
                    break;
                case "--quick":
                    o.Quick = true;
                    o.Runs = 1;
                    o.Phase = TimeSpan.FromSeconds(1);
                    o.DiskSize = 256L << 20;
                    o.MergeBaseSize = 1L << 30;
                    o.MergeDataSize = 128L << 20;
                    o.Snapshots = 5;
                    o.BackupDiskSize = 256L << 20;
                    o.MergeTimeout = TimeSpan.FromSeconds(30);
                    break;
                case "--out":
                    o.Output = Next();
                    break;
                case "--strata":
                    o.Strata = Next();
                    break;
                case "--seed":
                    o.Seed = int.Parse(Next(), CultureInfo.InvariantCulture);
                    break;
                case "--merge-timeout":
                    o.MergeTimeout = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture));
                    break;
                case "--phase":
                    o.Phase = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture));
                    break;
                default:
                    Console.Error.WriteLine($"{command}: unknown option '{args[i]}'; options: {Usage}");
                    return null;
            }
        }

        return o;
    }

    /// <summary>Prints a finished table to stdout and appends it to <see cref="Output"/>.</summary>
    public async Task EmitAsync(string markdown)
    {
        Console.WriteLine(markdown);
        if (Output is not null)
        {
            await File.AppendAllTextAsync(Output, markdown + Environment.NewLine);
        }
    }
}
