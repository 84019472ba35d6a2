namespace Strata.Guest;

/// <summary>What begin_snapshot did: the file systems the agent froze, how long the freeze took, and the lease.</summary>
public sealed record GuestFreezeResult(string Guest, int FrozenFileSystems, TimeSpan FreezeTime, TimeSpan Lease);
