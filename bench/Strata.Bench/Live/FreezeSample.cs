namespace Strata.Bench.Live;

/// <summary>One consistent snapshot, in ms: the guest's file systems frozen (freeze sent → thaw acknowledged), the switch within it, and the whole command as its caller waits for it.</summary>
internal sealed record FreezeSample(double Frozen, double Switch, double Total);
