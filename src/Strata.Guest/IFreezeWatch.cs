using System.Runtime.InteropServices;

namespace Strata.Guest;

/// <summary>
/// Something outside the daemon's process that thaws a guest when the daemon cannot (DESIGN.md rule
/// 8: a frozen guest always thaws): when the daemon dies, and when a freeze outlives its lease
/// because the daemon hangs without dying (stopped, deadlocked). A channel arms it for its socket
/// before it sends a freeze, tells it the lease once the agent acknowledged, and disarms it only
/// after the agent acknowledged the thaw.
/// </summary>
public interface IFreezeWatch
{
    /// <summary>
    /// From now on, if this process ends, or if no disarm comes within <paramref name="thawAfter"/>,
    /// the watch thaws the agent at <paramref name="socketPath"/>; on <paramref name="connection"/>
    /// (the daemon's connected socket, which the watch gets a copy of) when one is given, since the
    /// agent's chardev serves one client at a time. Throws <see cref="IOException"/> when the watch
    /// cannot be started.
    /// </summary>
    void Arm(string socketPath, SafeHandle? connection, TimeSpan thawAfter);

    /// <summary>The freeze was acknowledged: the watch thaws by itself if no disarm comes within <paramref name="thawAfter"/> from now.</summary>
    void Lease(string socketPath, TimeSpan thawAfter);

    /// <summary>The agent at <paramref name="socketPath"/> is thawed; nothing to do for it any more.</summary>
    void Disarm(string socketPath);
}
