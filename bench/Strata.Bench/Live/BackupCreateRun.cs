namespace Strata.Bench.Live;

/// <summary>One server's run of <see cref="BackupCreateBench"/>, by row ("full", "1%", ...): seconds, bytes read, and Strata's copy of the frozen image alone.</summary>
internal sealed record BackupCreateRun(Dictionary<string, double> Seconds, Dictionary<string, double> BytesRead, Dictionary<string, double> ImageSeconds);
