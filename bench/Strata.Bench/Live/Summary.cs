using System.Globalization;

namespace Strata.Bench.Live;

/// <summary>p50 / p99 / max of one run's values (nearest rank), and the median of several runs' summaries.</summary>
internal sealed record Summary(double P50, double P99, double Max)
{
    public static Summary Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return new(BenchStats.Percentile(sorted, 50), BenchStats.Percentile(sorted, 99), sorted.Count == 0 ? double.NaN : sorted[^1]);
    }

    /// <summary>Each field the median of that field over the runs.</summary>
    public static Summary Median(IEnumerable<Summary> runs)
    {
        var list = runs.ToList();
        return new(BenchStats.Median(list.Select(r => r.P50)), BenchStats.Median(list.Select(r => r.P99)), BenchStats.Median(list.Select(r => r.Max)));
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{P50:0.00} / {P99:0.00} / {Max:0.00}");
}
