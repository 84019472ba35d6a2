using System.Buffers;
using System.Net.Sockets;
using Strata.Nbd.Transport;

namespace Strata.Nbd.Server;

/// <summary>
/// One client of the server, from the greeting to the close. The handshake runs first, bounded by the
/// handshake timeout (NbdConnection.Handshake.cs); the transmission phase then has a receive loop that
/// parses requests and starts each one, and replies that go out, whole, in whatever order the requests
/// finish (NbdConnection.Transmission.cs).
/// </summary>
public sealed partial class NbdConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly SocketReader _reader;
    private readonly SocketWriter _writer;
    private readonly INbdExportCatalog _catalog;
    private readonly NbdServerOptions _options;

    // Cancelled to stop reading requests (server shutdown); requests already read still complete.
    private readonly CancellationTokenSource _receiveStop = new();

    // One slot per request in flight: the receive loop takes one before reading a request, the request
    // gives it back once its reply is sent. Bounds memory per connection (backpressure).
    private readonly SemaphoreSlim _slots;
    private int _disposed;

    internal NbdConnection(Socket socket, INbdExportCatalog catalog, NbdServerOptions options)
    {
        _socket = socket;
        _reader = new SocketReader(socket);
        _writer = new SocketWriter(socket);
        _catalog = catalog;
        _options = options;
        _slots = new SemaphoreSlim(options.MaxRequestsInFlight, options.MaxRequestsInFlight);
    }

    /// <summary>Runs the connection until the client leaves, breaks the protocol, or the server stops.</summary>
    public async Task RunAsync()
    {
        try
        {
            bool transmit;
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(_receiveStop.Token))
            {
                handshake.CancelAfter(_options.HandshakeTimeout);
                try
                {
                    transmit = await HandshakeAsync(handshake.Token);
                }
                catch (OperationCanceledException) when (!_receiveStop.IsCancellationRequested)
                {
                    Log($"handshake not finished within {_options.HandshakeTimeout.TotalSeconds:0.#} s: disconnecting");
                    return;
                }
            }

            if (transmit)
            {
                await TransmitAsync();
            }
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            Log($"connection closed: {e.Message}");
        }
        finally
        {
            Abort();
        }
    }

    /// <summary>Stops reading new requests; the connection closes once those in flight are answered.</summary>
    public void Stop()
    {
        try
        {
            _receiveStop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already closed.
        }
    }

    /// <summary>Closes the socket at once; pending sends and receives fail.</summary>
    public void Abort()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The peer is already gone.
        }

        _socket.Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Abort();
        _reader.Dispose();
        _writer.Dispose();
        _receiveStop.Dispose();
        _slots.Dispose();
    }

    private static bool IsDisconnect(Exception e) =>
        e is EndOfStreamException or SocketException or ObjectDisposedException or OperationCanceledException
        || (e is IOException && e is not Block.BlockException);

    private void Log(string message) => _options.Log?.Invoke($"nbd: {message}");

    private static byte[] Rent(int length) => ArrayPool<byte>.Shared.Rent(length);

    private static void Return(byte[] buffer) => ArrayPool<byte>.Shared.Return(buffer);
}
