namespace Strata.Bench.Live;

/// <summary>One line of a fio log: its Unix time in ms (truncated by fio) and its value (ns or IOPS).</summary>
internal readonly record struct FioSample(long TimeMs, long Value);
