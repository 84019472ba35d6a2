namespace Strata.Bench;

/// <summary>One row of the table: the same <c>bench</c> arguments are given to both tools, <paramref name="Cache"/> as <c>-t</c>.</summary>
internal sealed record ImgBenchCase(string Format, string Pattern, int BufferSize, long Step, bool Write, int Depth, int Count, string Cache)
{
    /// <summary>IOPS for small requests, MB/s for large ones.</summary>
    public bool ReportsIops => BufferSize <= 4096;

    public IEnumerable<string> Arguments(string image)
    {
        List<string> args = ["bench", "-f", Format, "-t", Cache, "-c", Count.ToString(), "-d", Depth.ToString(), "-s", BufferSize.ToString(), "-S", Step.ToString()];
        if (Write)
        {
            args.Add("-w");
        }

        args.Add(image);
        return args;
    }

    /// <summary>IOPS or MB/s of a run that took <paramref name="seconds"/>.</summary>
    public double Rate(double seconds) => ReportsIops ? Count / seconds : Count * (double)BufferSize / seconds / 1e6;
}
