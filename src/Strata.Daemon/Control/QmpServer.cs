using System.Net.Sockets;
using Strata.Nbd.Transport;

namespace Strata.Daemon.Control;

/// <summary>
/// A control socket speaking the QMP wire format (qemu docs/interop/qmp-spec.rst), on a unix socket
/// only: whoever reaches it can stop the daemon and create files, so it is never offered on a network.
/// </summary>
public sealed class QmpServer : IAsyncDisposable
{
    /// <summary>
    /// Control connections open at once (docs/serve.md). One more is told so in an error message and
    /// closed; each connection holds buffers and an event subscription, so their number is bounded.
    /// </summary>
    public const int MaxConnections = 16;

    private readonly StorageDaemon _daemon;
    private readonly NbdEndpoint _endpoint;
    private readonly Action<string>? _log;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();

    // Protects _connections.
    private readonly Lock _lock = new();
    private readonly Dictionary<QmpConnection, Task> _connections = [];
    private Task? _acceptLoop;

    public QmpServer(StorageDaemon daemon, NbdEndpoint endpoint, Action<string>? log)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!endpoint.IsUnix)
        {
            throw new ArgumentException($"the control socket is unix:PATH only, not '{endpoint}'", nameof(endpoint));
        }

        _daemon = daemon;
        _endpoint = endpoint;
        _log = log;
        _listener = endpoint.CreateSocket();
    }

    public void Start()
    {
        if (_endpoint.UnixPath is { } path && File.Exists(path))
        {
            File.Delete(path);
        }

        _listener.Bind(_endpoint.EndPoint);
        _listener.Listen(16);
        _acceptLoop = AcceptLoopAsync();
        _log?.Invoke($"qmp: listening on {_endpoint}");
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        Task[] running;
        lock (_lock)
        {
            foreach (var connection in _connections.Keys)
            {
                connection.Dispose();
            }

            running = [.. _connections.Values];
        }

        await Task.WhenAll(running);
        if (_endpoint.UnixPath is { } path && _acceptLoop is not null)
        {
            File.Delete(path);
        }

        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        await Task.Yield();
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            lock (_lock)
            {
                if (_connections.Count < MaxConnections)
                {
                    var connection = new QmpConnection(client, _daemon, _log);
                    _connections[connection] = RunAsync(connection);
                    continue;
                }
            }

            _log?.Invoke($"qmp: connection refused: {MaxConnections} control connections are open already");
            _ = RefuseAsync(client);
        }
    }

    /// <summary>Tells a client beyond <see cref="MaxConnections"/> why, before the close, rather than closing silently.</summary>
    private static async Task RefuseAsync(Socket client)
    {
        using (client)
        {
            var message = QmpConnection.ErrorMessage(null, "GenericError",
                $"too many control connections (at most {MaxConnections} at once); try again when one has closed");
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                // A new connection's send buffer is empty: this one short message fits at once.
                await client.SendAsync(message, SocketFlags.None, timeout.Token);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The client left already.
            }
        }
    }

    private async Task RunAsync(QmpConnection connection)
    {
        await Task.Yield();
        try
        {
            await connection.RunAsync(_stopping.Token);
        }
        finally
        {
            connection.Dispose();
            lock (_lock)
            {
                _connections.Remove(connection);
            }
        }
    }
}
