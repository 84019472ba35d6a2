using Strata.Daemon;
using Strata.Daemon.Control;

namespace Strata.Fuzz;

/// <summary>
/// The input is everything a control client sends on one connection (qmp-spec.rst): a
/// <see cref="QmpConnection"/> of a daemon without drives reads it from a socket pair, splits it into
/// messages, parses and answers them.
/// </summary>
/// <remarks>
/// Without drives no command can reach a file, whatever path the input names. The connection may only
/// answer bad input with an error reply. Failures: an exception escaping the connection, one it
/// caught as unexpected (<see cref="InternalErrorLog"/>), a line of output that is not a greeting,
/// reply or event, or a message not answered exactly once (<see cref="QmpSessionChecker"/>).
/// The seam is <see cref="ConverseAsync"/>: bytes in, bytes out. When the parser gains an entry point
/// that takes bytes, pointing the target at it changes that method only.
/// </remarks>
internal sealed class QmpTarget : IFuzzTarget
{
    public string Name => "qmp";

    public async Task RunAsync(byte[] input, FuzzProgress progress)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(progress);
        await using var daemon = new StorageDaemon(new DaemonOptions());
        progress.Step = "session";
        var log = new InternalErrorLog();
        byte[] output = await ConverseAsync(daemon, input, log, progress.Cancellation);
        log.ThrowIfAny();
        QmpSessionChecker.Check(input, output, quitRequested: daemon.StopRequested.IsCompleted);
    }

    private static async Task<byte[]> ConverseAsync(StorageDaemon daemon, byte[] input, InternalErrorLog log, CancellationToken cancellationToken)
    {
        var (server, client) = SocketPair.Create();
        using (client)
        {
            using var connection = new QmpConnection(server, daemon, log.Write);
            var run = connection.RunAsync(cancellationToken);
            var exchange = ClientBytes.ExchangeAsync(client, input);
            await run;

            // The connection ends at the end of the input or at quit, and closes its socket only when disposed.
            connection.Dispose();
            return await exchange;
        }
    }
}
