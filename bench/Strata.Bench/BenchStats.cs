namespace Strata.Bench;

/// <summary>The few statistics the benchmark tables print: median, nearest-rank percentile, spread.</summary>
internal static class BenchStats
{
    /// <summary>The median of the values that are numbers; NaN if there is none.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToList();
        if (sorted.Count == 0)
        {
            return double.NaN;
        }

        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>The nearest-rank percentile <paramref name="p"/> (0–100) of sorted values; NaN if empty.</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    /// <summary>Half the range of the runs, in percent of the median: how much to trust a row.</summary>
    public static double Spread(IEnumerable<double> values, double median)
    {
        var valid = values.Where(v => !double.IsNaN(v)).ToList();
        return valid.Count == 0 || median == 0 || double.IsNaN(median) ? 0 : (valid.Max() - valid.Min()) / 2 / median * 100;
    }
}
