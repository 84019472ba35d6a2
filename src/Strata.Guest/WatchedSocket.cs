using System.Net.Sockets;

namespace Strata.Guest;

/// <summary>What the freeze watch knows of one armed guest socket (<see cref="FreezeWatcher"/>).</summary>
internal sealed class WatchedSocket(string path)
{
    public string Path { get; } = path;

    /// <summary>The copy of the daemon's connection to the agent, until the watch used it or the socket was disarmed.</summary>
    public SafeSocketHandle? Connection { get; set; }

    /// <summary>When the watch thaws by itself (a Stopwatch timestamp), or null once it did or gave up.</summary>
    public long? Deadline { get; set; }

    /// <summary>While thawing on a deadline fails: when the watch stops retrying.</summary>
    public long? GiveUpAt { get; set; }
}
