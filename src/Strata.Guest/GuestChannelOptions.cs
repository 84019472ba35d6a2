namespace Strata.Guest;

/// <summary>How a guest channel talks to its agent, keeps its connection and bounds a freeze.</summary>
public sealed record GuestChannelOptions
{
    public GuestAgentOptions Agent { get; init; } = new();

    /// <summary>
    /// The longest a freeze by begin_snapshot lasts: at its end Strata thaws the guest, and a snapshot
    /// attempted later in that freeze is refused (it would not be consistent). A frozen guest blocks
    /// every write of every application in it, so this is short by default.
    /// </summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long past a freeze's lease the freeze watch waits for this process to thaw before it
    /// thaws the guest itself (a daemon that is stopped or deadlocked does not thaw). Covers the
    /// daemon's own thaw call and a snapshot's switch still running at the lease's end.
    /// </summary>
    public TimeSpan WatchGrace { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often a connected agent is pinged, so that a lost or hung agent is noticed and reported.</summary>
    public TimeSpan HealthInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The first wait between attempts to reconnect; it doubles after each failure, up to <see cref="MaxReconnectDelay"/>.</summary>
    public TimeSpan MinReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(5);
}
