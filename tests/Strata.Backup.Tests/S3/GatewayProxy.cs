using System.Net;
using System.Net.Sockets;

namespace Strata.Backup.Tests.S3;

/// <summary>
/// A loopback TCP relay between a backup and the gateway, to stage faults at a chosen moment: once
/// <see cref="TripAfter"/> bytes went from the client to the gateway (the image upload has begun),
/// it either holds every connection (no byte moves any more: a process killed then dies mid-upload)
/// or drops them all and refuses new ones until <see cref="Restore"/> (the gateway unreachable).
/// </summary>
public sealed class GatewayProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _gateway;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _tripped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<TcpClient> _open = []; // guarded by itself: the relays' sockets, closed on a drop
    private readonly Task _accepting;
    private long _sent;
    private volatile bool _down;

    public GatewayProxy(string gatewayUrl, long tripAfter, bool dropOnTrip)
    {
        var uri = new Uri(gatewayUrl);
        _gateway = new IPEndPoint(IPAddress.Parse(uri.Host), uri.Port);
        TripAfter = tripAfter;
        DropOnTrip = dropOnTrip;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public long TripAfter { get; }

    public bool DropOnTrip { get; }

    /// <summary>Completes when the threshold is crossed.</summary>
    public Task Tripped => _tripped.Task;

    /// <summary>After a drop: connections are relayed again.</summary>
    public void Restore() => _down = false;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        DropAll();
        try
        {
            await _accepting;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            if (_down)
            {
                client.Client.LingerState = new LingerOption(true, 0); // a reset, as a port with no listener behind a firewall would give
                client.Dispose();
                continue;
            }

            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        var server = new TcpClient();
        lock (_open)
        {
            _open.Add(client);
            _open.Add(server);
        }

        try
        {
            await server.ConnectAsync(_gateway, _stop.Token);
            await Task.WhenAny(PumpAsync(client.GetStream(), server.GetStream(), upstream: true), PumpAsync(server.GetStream(), client.GetStream(), upstream: false));
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The relay ends with either side.
        }
        finally
        {
            client.Dispose();
            server.Dispose();
        }
    }

    private async Task PumpAsync(Stream from, Stream to, bool upstream)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            if (Tripped.IsCompleted && !DropOnTrip)
            {
                await Task.Delay(Timeout.Infinite, _stop.Token); // held: nothing moves until the end
            }

            int n = await from.ReadAsync(buffer, _stop.Token);
            if (n == 0)
            {
                return;
            }

            await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
            if (upstream && Interlocked.Add(ref _sent, n) >= TripAfter && _tripped.TrySetResult())
            {
                if (DropOnTrip)
                {
                    _down = true;
                    DropAll();
                }
            }
        }
    }

    private void DropAll()
    {
        lock (_open)
        {
            foreach (var socket in _open)
            {
                socket.Dispose();
            }

            _open.Clear();
        }
    }
}
