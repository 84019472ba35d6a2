using System.Net.Sockets;
using Strata.Nbd.Transport;

namespace Strata.Daemon.Control;

/// <summary>A control socket speaking the QMP wire format (qemu docs/interop/qmp-spec.rst).</summary>
public sealed class QmpServer : IAsyncDisposable
{
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

            var connection = new QmpConnection(client, _daemon, _log);
            lock (_lock)
            {
                _connections[connection] = RunAsync(connection);
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
