using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Strata.Backup.Tests.S3;

/// <summary>
/// A loopback TCP relay between a backup and the gateway, to stage faults at a chosen moment: once
/// <see cref="TripAfter"/> bytes went from the client to the gateway (the image upload has begun),
/// it either holds every connection (no byte moves any more: a process killed then dies mid-upload)
/// or drops them all and refuses new ones until <see cref="Restore"/> (the gateway unreachable).
/// Made with a request pattern instead, it lets everything through but the requests whose request
/// line matches (<see cref="StoppingPart"/>: those that upload one part of a multipart upload): each
/// is held, or reset as it starts, until <see cref="Restore"/>, so a test knows what reached the
/// store when it kills the backup or the retries give up.
/// </summary>
public sealed class GatewayProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _gateway;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _tripped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<TcpClient> _open = []; // guarded by itself: the relays' sockets, closed on a drop
    private readonly Task _accepting;
    private readonly bool _byRequest;
    private long _sent;
    private volatile bool _down;
    private volatile Regex? _stopped; // the request lines held or reset, until Restore

    public GatewayProxy(string gatewayUrl, long tripAfter, bool dropOnTrip)
    {
        var uri = new Uri(gatewayUrl);
        _gateway = new IPEndPoint(IPAddress.Parse(uri.Host), uri.Port);
        TripAfter = tripAfter;
        DropOnTrip = dropOnTrip;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    /// <param name="gatewayUrl">The gateway.</param>
    /// <param name="stopRequest">
    /// A regular expression the request line (<c>PUT /BUCKET/KEY?QUERY HTTP/1.1</c>) of the requests to
    /// stop matches; not anchored, since on a kept-alive connection a request follows the last body byte.
    /// </param>
    /// <param name="dropOnTrip">Reset the requests stopped; else hold them.</param>
    public GatewayProxy(string gatewayUrl, string stopRequest, bool dropOnTrip)
        : this(gatewayUrl, long.MaxValue, dropOnTrip)
    {
        _byRequest = true;
        _stopped = new Regex(stopRequest, RegexOptions.CultureInvariant);
    }

    /// <summary>A relay that stops the requests uploading part <paramref name="part"/> of a multipart upload (<c>?partNumber=2&amp;uploadId=…</c>, in either order).</summary>
    public static GatewayProxy StoppingPart(string gatewayUrl, int part, bool dropOnTrip) =>
        new(gatewayUrl, $@"PUT \S*[?&]partNumber={part}(&|\s)", dropOnTrip);

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public long TripAfter { get; }

    public bool DropOnTrip { get; }

    /// <summary>Completes when the threshold is crossed, or a stopped request is first sent.</summary>
    public Task Tripped => _tripped.Task;

    /// <summary>The bytes relayed from the client to the gateway so far.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>After a drop, or with requests stopped: connections and every request are relayed again.</summary>
    public void Restore()
    {
        _stopped = null;
        _down = false;
    }

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
        string tail = ""; // the end of the previous read, for a request line cut in two
        while (true)
        {
            if (Tripped.IsCompleted && !DropOnTrip && !_byRequest)
            {
                await Task.Delay(Timeout.Infinite, _stop.Token); // held: nothing moves until the end
            }

            int n = await from.ReadAsync(buffer, _stop.Token);
            if (n == 0)
            {
                return;
            }

            if (upstream && _stopped is { } stop)
            {
                string text = tail + Encoding.Latin1.GetString(buffer, 0, n);
                tail = text[Math.Max(0, text.Length - 64)..];
                if (stop.IsMatch(text))
                {
                    _tripped.TrySetResult();
                    if (DropOnTrip)
                    {
                        throw new IOException("reset"); // the relay's end closes both sides, as a cut link would
                    }

                    await Task.Delay(Timeout.Infinite, _stop.Token); // held: the gateway never hears of it
                }
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
