namespace Strata.Guest;

/// <summary>What end_snapshot did: the file systems thawed and how long the guest was frozen; Expired when the lease had already thawed it.</summary>
public sealed record GuestThawResult(string Guest, int ThawedFileSystems, TimeSpan FrozenFor, bool Expired);
