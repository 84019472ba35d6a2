namespace Strata.Nbd.Server;

/// <summary>
/// What the server needs to choose a connection to close when it is full (docs/nbd.md, "Connections"):
/// whether requests are in flight, whether any was ever sent, and since when the connection is quiet.
/// </summary>
/// <remarks>
/// Invariant: a connection with a request in flight is never evicted. The in-flight count doubles as
/// the claim: eviction swaps 0 for a large negative value, so a request read at the same moment
/// finds the connection claimed and is dropped unanswered, never run, and the count cannot be
/// claimed while it is above zero.
/// </remarks>
public sealed partial class NbdConnection
{
    private const int Claimed = int.MinValue / 2;

    // Requests read and not yet answered; Claimed (negative) once the server took the connection.
    private int _inFlight;

    // Environment.TickCount64 of the end of the handshake, or of the last request read or answered.
    private long _quietSince = Environment.TickCount64;

    private volatile bool _used;
    private volatile bool _transmitting;

    /// <summary>True once the client sent a request: a connection never used goes before one that was.</summary>
    internal bool HasBeenUsed => _used;

    /// <summary>When the connection last did something (<see cref="Environment.TickCount64"/>).</summary>
    internal long QuietSince => Volatile.Read(ref _quietSince);

    /// <summary>In transmission, nothing in flight, and quiet for at least <paramref name="quietMilliseconds"/>.</summary>
    internal bool IsIdle(long now, long quietMilliseconds) =>
        _transmitting && Volatile.Read(ref _inFlight) == 0 && now - QuietSince >= quietMilliseconds;

    /// <summary>Takes the connection for eviction if nothing is in flight; false if a request got there first.</summary>
    internal bool TryClaim() => Interlocked.CompareExchange(ref _inFlight, Claimed, 0) == 0;

    /// <summary>Closes a claimed connection: the client reads end of stream with no request of its unanswered.</summary>
    internal void Evict(string reason)
    {
        Log($"closing this connection: {reason}");
        Abort();
    }

    private void TransmissionStarted()
    {
        Touch();
        _transmitting = true;
    }

    /// <summary>Counts a request just read; false when the server claimed the connection (drop the request).</summary>
    private bool RequestStarted()
    {
        _used = true;
        Touch();
        return Interlocked.Increment(ref _inFlight) > 0;
    }

    private void RequestFinished()
    {
        // Touched before the count drops, so the connection never looks idle since before this request.
        Touch();
        Interlocked.Decrement(ref _inFlight);
    }

    private void Touch() => Volatile.Write(ref _quietSince, Environment.TickCount64);
}
