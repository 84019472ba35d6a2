using System.Globalization;

namespace Strata.Bench.Live;

/// <summary>How the live tables print numbers: fixed decimals, "n/a" for what was not measured.</summary>
internal static class Cells
{
    /// <summary><paramref name="a"/> / <paramref name="b"/> as "1.23×".</summary>
    public static string Ratio(double a, double b) =>
        double.IsNaN(a) || double.IsNaN(b) || b == 0 ? "n/a" : string.Create(CultureInfo.InvariantCulture, $"{a / b:0.00}×");

    public static string Number(double value, string format = "0.00") =>
        double.IsNaN(value) ? "n/a" : value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>A median with ± half the range of the runs in percent.</summary>
    public static string WithSpread(IReadOnlyList<double> runs, string format = "0.00")
    {
        double median = BenchStats.Median(runs);
        return double.IsNaN(median) ? "n/a" : $"{Number(median, format)} ±{Number(BenchStats.Spread(runs, median), "0")}%";
    }
}
