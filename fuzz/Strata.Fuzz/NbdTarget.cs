using Strata.Nbd.Server;

namespace Strata.Fuzz;

/// <summary>
/// The input is everything an NBD client sends on one connection: handshake options, then requests
/// and write payloads (proto.md). A whole server connection (<see cref="NbdConnection"/>) reads it from
/// a socket pair against the exports of <see cref="FuzzExportCatalog"/>.
/// </summary>
/// <remarks>
/// Bad input may only end in error replies or a disconnect. Besides an escaping exception (on the
/// connection's thread it ends the process), a failure is an exception the connection caught as
/// unexpected (<see cref="InternalErrorLog"/>), a session that breaks <see cref="NbdSessionChecker"/>'s
/// rules, or a write that reached the read-only export.
/// </remarks>
internal sealed class NbdTarget : IFuzzTarget
{
    /// <summary>Small limits, so the limit paths are reachable by small inputs.</summary>
    public static NbdServerOptions ServerOptions { get; } = new()
    {
        MaxPayload = 128 * 1024,
        MaxRequestsInFlight = 8,
    };

    public string Name => "nbd";

    public async Task RunAsync(byte[] input, FuzzProgress progress)
    {
        ArgumentNullException.ThrowIfNull(progress);
        ArgumentNullException.ThrowIfNull(input);
        var catalog = await FuzzExportCatalog.CreateAsync();
        var log = new InternalErrorLog();
        var (server, client) = SocketPair.Create();
        using (client)
        {
            using var connection = new NbdConnection(server, catalog, ServerOptions with { Log = log.Write }, new NbdBufferPool());
            var finished = connection.StartAsync();
            // An overrun run closes the connection: everything waiting on the socket ends.
            await using var abort = progress.Cancellation.Register(connection.Abort);
            progress.Step = "session";
            byte[] output = await ClientBytes.ExchangeAsync(client, input);
            await finished;
            log.ThrowIfAny();
            NbdSessionChecker.Check(input, output);
        }

        if (await catalog.HasReadOnlyDiskChangedAsync())
        {
            throw new FuzzFailure("the read-only export's disk was changed");
        }
    }
}
