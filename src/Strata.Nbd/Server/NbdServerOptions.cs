namespace Strata.Nbd.Server;

public sealed record NbdServerOptions
{
    /// <summary>A client that has not finished its handshake after this long is disconnected.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Connections open at once. A client beyond them takes the place of the connection idle longest,
    /// if one has been idle for <see cref="EvictIdleAfter"/>, or waits for a place for at most the
    /// handshake timeout (docs/nbd.md, "Connections").
    /// </summary>
    public int MaxConnections { get; init; } = 100;

    /// <summary>
    /// How long a connection must have had no request in flight before a new client may take its place
    /// when <see cref="MaxConnections"/> are open. A connection with a request in flight is never taken.
    /// </summary>
    public TimeSpan EvictIdleAfter { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Requests one connection may have in flight; the server stops reading until one finishes (backpressure).</summary>
    public int MaxRequestsInFlight { get; init; } = 64;

    /// <summary>The largest READ or WRITE payload accepted, advertised as the maximum block size.</summary>
    public int MaxPayload { get; init; } = 32 * 1024 * 1024;

    /// <summary>
    /// Bytes of read buffers one connection may hold at once: a read holds one piece (at most 1 MiB)
    /// while it is read and sent, so this bounds what a client that does not read its replies pins.
    /// At least one piece.
    /// </summary>
    public long ReadBudget { get; init; } = 4 * 1024 * 1024;

    /// <summary>
    /// Bytes of write payloads one connection may hold at once, received and not yet written; the server
    /// stops reading the connection's requests until some are written (backpressure). At least
    /// <see cref="MaxPayload"/>, so the largest write accepted always fits.
    /// </summary>
    public long WriteBudget { get; init; } = 32 * 1024 * 1024;

    /// <summary>
    /// How long a connection's thread may poll its socket before it blocks for the next request
    /// (QEMU's <c>poll-max-ns</c>; <see cref="Transport.ReceivePoll"/>, docs/nbd.md "Queue depth 1").
    /// The window adapts to the client between zero and this; zero never polls. 64 µs covers a
    /// queue-depth-1 client's turnaround on a two-core virtual machine (about 20–40 µs measured).
    /// </summary>
    public TimeSpan PollMax { get; init; } = TimeSpan.FromMicroseconds(64);

    /// <summary>Verbose diagnostics (one line each); null keeps quiet.</summary>
    public Action<string>? Log { get; init; }
}
