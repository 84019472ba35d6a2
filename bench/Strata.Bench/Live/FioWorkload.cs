using System.Globalization;

namespace Strata.Bench.Live;

/// <summary>One fio job shape (pattern, block size, queue depth) driven over NBD by fio's nbd engine (libnbd).</summary>
internal sealed record FioWorkload(string Pattern, int BlockSize, int Depth)
{
    public static readonly FioWorkload RandWrite4K = new("randwrite", 4096, 32);
    public static readonly FioWorkload RandRead4K = new("randread", 4096, 32);
    public static readonly FioWorkload RandWrite4KQD16 = new("randwrite", 4096, 16);
    public static readonly FioWorkload RandWrite4KQD1 = new("randwrite", 4096, 1);
    public static readonly FioWorkload RandWrite64K = new("randwrite", 65536, 32);

    public string Label => $"{Pattern} {BlockSize / 1024} KiB QD{Depth}";

    /// <summary>A time-based job over the first <paramref name="size"/> bytes of the export, JSON output.</summary>
    public List<string> Arguments(string uri, long size, TimeSpan runtime) =>
    [
        "--name=guest", "--ioengine=nbd", $"--uri={uri}", $"--rw={Pattern}", $"--bs={BlockSize}",
        $"--iodepth={Depth}", $"--size={size}", "--time_based",
        $"--runtime={((long)runtime.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)}ms", "--output-format=json",
    ];
}
