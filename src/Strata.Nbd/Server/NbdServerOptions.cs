namespace Strata.Nbd.Server;

public sealed record NbdServerOptions
{
    /// <summary>A client that has not finished its handshake after this long is disconnected.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections beyond this many are closed as soon as accepted.</summary>
    public int MaxConnections { get; init; } = 100;

    /// <summary>Requests one connection may have in flight; the server stops reading until one finishes (backpressure).</summary>
    public int MaxRequestsInFlight { get; init; } = 64;

    /// <summary>The largest READ or WRITE payload accepted, advertised as the maximum block size.</summary>
    public int MaxPayload { get; init; } = 32 * 1024 * 1024;

    /// <summary>Verbose diagnostics (one line each); null keeps quiet.</summary>
    public Action<string>? Log { get; init; }
}
