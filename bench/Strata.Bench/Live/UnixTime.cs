namespace Strata.Bench.Live;

/// <summary>The wall clock fio's logs use with <c>--log_unix_epoch=1</c>: milliseconds since 1970 (here with a fraction).</summary>
internal static class UnixTime
{
    public static double Milliseconds() => (DateTime.UtcNow - DateTime.UnixEpoch).TotalMilliseconds;
}
