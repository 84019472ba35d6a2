using System.Net;
using System.Net.Sockets;
using Strata.Nbd.Transport;

namespace Strata.Nbd.Server;

/// <summary>
/// The NBD server: accepts connections on its endpoints and runs one <see cref="NbdConnection"/> per
/// client. Stopping closes the listeners (and removes unix socket files), lets every connection finish
/// the requests it has in flight, then closes them.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    /// <summary>Each connection's socket send buffer (see where it is set).</summary>
    private const int SendBufferSize = 4 << 20;

    /// <summary>How often a client waiting for a place looks again for one.</summary>
    private static readonly TimeSpan AdmissionPoll = TimeSpan.FromMilliseconds(200);

    /// <summary>How long stopping waits for connections to answer what they have in flight.</summary>
    private static readonly TimeSpan StopGracePeriod = TimeSpan.FromSeconds(10);

    private readonly INbdExportCatalog _catalog;
    private readonly NbdServerOptions _options;
    private readonly List<(Socket Socket, NbdEndpoint Endpoint, Task AcceptLoop)> _listeners = [];
    private readonly CancellationTokenSource _stopping = new();

    // Shared by every connection, so memory let go by one is reused by the next.
    private readonly NbdBufferPool _pool = new();

    // Protects _connections and _stopped.
    private readonly Lock _lock = new();
    private readonly HashSet<NbdConnection> _connections = [];
    private readonly List<Task> _connectionTasks = [];
    private bool _stopped;

    public NbdServer(INbdExportCatalog catalog, NbdServerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        _catalog = catalog;
        _options = options ?? new NbdServerOptions();
    }

    public int ConnectionCount
    {
        get
        {
            lock (_lock)
            {
                return _connections.Count;
            }
        }
    }

    /// <summary>Binds and starts accepting on <paramref name="endpoint"/>. A stale unix socket file is replaced.</summary>
    public void Listen(NbdEndpoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var bindTo = endpoint.EndPoint;
        if (bindTo is DnsEndPoint dns)
        {
            var address = Dns.GetHostAddresses(dns.Host).FirstOrDefault()
                ?? throw new SocketException((int)SocketError.HostNotFound);
            bindTo = new IPEndPoint(address, dns.Port);
        }

        if (endpoint.UnixPath is { } path && File.Exists(path))
        {
            File.Delete(path);
        }

        var socket = bindTo is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(bindTo.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(bindTo);
            socket.Listen(128);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        lock (_lock)
        {
            _listeners.Add((socket, endpoint, AcceptLoopAsync(socket)));
        }

        _options.Log?.Invoke($"nbd: listening on {endpoint}");
    }

    /// <summary>Stops accepting, lets in-flight requests finish, closes every connection.</summary>
    public async Task StopAsync()
    {
        List<NbdConnection> connections;
        List<Task> tasks;
        (Socket Socket, NbdEndpoint Endpoint, Task AcceptLoop)[] listeners;
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            connections = [.. _connections];
            tasks = [.. _connectionTasks];
            listeners = [.. _listeners];
        }

        await _stopping.CancelAsync();
        foreach (var (socket, endpoint, acceptLoop) in listeners)
        {
            socket.Dispose();
            await acceptLoop;
            if (endpoint.UnixPath is { } path)
            {
                File.Delete(path);
            }
        }

        foreach (var connection in connections)
        {
            connection.Stop();
        }

        try
        {
            await Task.WhenAll(tasks).WaitAsync(StopGracePeriod);
        }
        catch (TimeoutException)
        {
            // A peer that stopped reading its replies cannot hold the shutdown forever.
            _options.Log?.Invoke("nbd: connections did not finish in time: closing them");
            foreach (var connection in connections)
            {
                connection.Abort();
            }

            await Task.WhenAll(tasks);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        await Task.Yield();
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }

                _options.Log?.Invoke($"nbd: accept failed: {e.Message}");
                continue;
            }

            if (client.AddressFamily != AddressFamily.Unix)
            {
                client.NoDelay = true;
            }

            // Room for a few large read replies: the connection's thread hands a 1 MiB reply to the
            // kernel and reads the next request while the client drains it, instead of waiting in
            // send (measured: +25% for 1 MiB reads at depth 32). The kernel caps this at net.core.wmem_max.
            client.SendBufferSize = SendBufferSize;

            var connection = new NbdConnection(client, _catalog, _options, _pool);
            if (!await AdmitAsync(connection))
            {
                connection.Dispose();
            }
        }
    }

    /// <summary>
    /// Lets a new client in (docs/nbd.md, "Connections"). Below the limit it starts at once. At the
    /// limit it takes the place of an idle connection (nothing in flight and quiet for
    /// <see cref="NbdServerOptions.EvictIdleAfter"/>), one never used first, else the one quiet
    /// longest. With none idle, it waits, while further clients queue in the listen backlog, until a
    /// place frees or a connection turns idle; after the handshake timeout it is refused.
    /// </summary>
    private async Task<bool> AdmitAsync(NbdConnection connection)
    {
        int rounds = (int)Math.Ceiling(_options.HandshakeTimeout / AdmissionPoll);
        for (int round = 0; ; round++)
        {
            bool admitted = false;
            NbdConnection? evicted = null;
            lock (_lock)
            {
                if (_stopped)
                {
                    _options.Log?.Invoke("nbd: refusing a connection: shutting down");
                    return false;
                }

                if (_connections.Count >= _options.MaxConnections)
                {
                    evicted = ClaimIdle();
                    if (evicted is not null)
                    {
                        _connections.Remove(evicted);
                    }
                }

                if (_connections.Count < _options.MaxConnections)
                {
                    _connections.Add(connection);
                    _connectionTasks.RemoveAll(t => t.IsCompleted);
                    _connectionTasks.Add(RunConnectionAsync(connection));
                    admitted = true;
                }
            }

            if (evicted is not null)
            {
                long quiet = (Environment.TickCount64 - evicted.QuietSince) / 1000;
                _options.Log?.Invoke($"nbd: {_options.MaxConnections} connections open: closing one idle for {quiet} s to let a new client in");
                evicted.Evict("the server is full and this connection was idle");
            }

            if (admitted)
            {
                return true;
            }

            if (round >= rounds)
            {
                _options.Log?.Invoke($"nbd: refusing a connection: {_options.MaxConnections} connections open and none idle");
                return false;
            }

            if (round == 0)
            {
                _options.Log?.Invoke($"nbd: {_options.MaxConnections} connections open: a new client waits for one to close or go idle");
            }

            try
            {
                await Task.Delay(AdmissionPoll, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
    }

    /// <summary>The idle connection to close, claimed (see <see cref="NbdConnection.TryClaim"/>); null when none is idle. Called under the lock.</summary>
    private NbdConnection? ClaimIdle()
    {
        long now = Environment.TickCount64;
        long quiet = (long)_options.EvictIdleAfter.TotalMilliseconds;
        var candidates = _connections.Where(c => c.IsIdle(now, quiet))
            .OrderBy(c => c.HasBeenUsed)
            .ThenBy(c => c.QuietSince);
        return candidates.FirstOrDefault(c => c.TryClaim());
    }

    private async Task RunConnectionAsync(NbdConnection connection)
    {
        try
        {
            await connection.StartAsync();
        }
        finally
        {
            bool last;
            lock (_lock)
            {
                _connections.Remove(connection);
                last = _connections.Count == 0;
            }

            connection.Dispose();
            _pool.ConnectionClosed(last);
        }
    }
}
