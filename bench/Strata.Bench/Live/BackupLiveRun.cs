namespace Strata.Bench.Live;

/// <summary>One server's run of <see cref="BackupLiveBench"/>: backup times in seconds, and the guest's IOPS under each load.</summary>
internal sealed record BackupLiveRun(double Full, double Incremental, double Convert, Dictionary<string, double> Iops);
