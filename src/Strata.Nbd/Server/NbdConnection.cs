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
/// <remarks>
/// The receive loop owns a dedicated thread and blocking socket calls, as nbdkit's threads do. A
/// request against the page cache completes inline on that thread (pread, then one send of header and
/// data), so a request costs no thread hop; a request that really waits (a flush, qcow2 metadata I/O)
/// continues on the thread pool while the loop reads the next ones, and replies when it is done.
/// Measured on two cores, this beats the event-loop socket path by the cost of its wake-ups.
/// </remarks>
public sealed partial class NbdConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly SocketReader _reader;
    private readonly SocketWriter _writer;
    private readonly INbdExportCatalog _catalog;
    private readonly NbdServerOptions _options;
    private readonly NbdBufferPool _pool;

    // What this connection's requests may hold in buffers (docs/nbd.md, "Memory"): reads a piece each,
    // writes their whole payload, which must fit at least one write of the largest size accepted.
    private readonly ConnectionBudget _readBudget;
    private readonly ConnectionBudget _writeBudget;

    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // One slot per request in flight: the receive loop takes one before reading a request, the request
    // gives it back once its reply is sent. Bounds memory per connection (backpressure).
    private readonly SemaphoreSlim _slots;
    private int _disposed;

    // Set to stop reading requests (server shutdown, handshake timeout); requests already read still complete.
    private volatile bool _stopping;
    private volatile bool _handshakeDone;

    internal NbdConnection(Socket socket, INbdExportCatalog catalog, NbdServerOptions options, NbdBufferPool pool)
    {
        _socket = socket;
        _reader = new SocketReader(socket, options.PollMax, NothingElseInFlight);
        _writer = new SocketWriter(socket);
        _catalog = catalog;
        _options = options;
        _pool = pool;
        _readBudget = new ConnectionBudget(Math.Max(options.ReadBudget, NbdBufferPool.PieceSize));
        _writeBudget = new ConnectionBudget(Math.Max(options.WriteBudget, NbdBufferPool.PayloadFootprint(options.MaxPayload)));
        _slots = new SemaphoreSlim(options.MaxRequestsInFlight, options.MaxRequestsInFlight);
    }

    /// <summary>Runs the connection on its own thread; the task completes when the connection is over.</summary>
    public Task StartAsync()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "nbd connection" };
        thread.Start();
        return _finished.Task;
    }

    /// <summary>
    /// Whether the receive may poll (docs/nbd.md, "Queue depth 1"): only while no other request of this
    /// connection is in flight. One that is waits in its store (RBD, O_DIRECT, a flush) on other threads,
    /// which need the CPU more than a poll for the next request does (measured on RBD: polling there
    /// lost a few percent on every row).
    /// </summary>
    private bool NothingElseInFlight() => _slots.CurrentCount >= _options.MaxRequestsInFlight - 1;

    /// <summary>Stops reading new requests; the connection closes once those in flight are answered.</summary>
    public void Stop()
    {
        _stopping = true;
        try
        {
            // Wakes the blocked receive with end of stream; sends still work for the replies in flight.
            _socket.Shutdown(_handshakeDone ? SocketShutdown.Receive : SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }

    private void Run()
    {
        try
        {
            bool transmit;
            using (new Timer(_ => HandshakeExpired(), null, _options.HandshakeTimeout, Timeout.InfiniteTimeSpan))
            {
                transmit = Handshake();
                _handshakeDone = true;
            }

            if (transmit && !_stopping)
            {
                Transmit();
            }
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            Log(_handshakeDone || !_stopping ? $"connection closed: {e.Message}"
                : $"handshake not finished within {_options.HandshakeTimeout.TotalSeconds:0.#} s: disconnected");
        }
        finally
        {
            Abort();
            _attached?.Detach(this);
            _finished.TrySetResult();
        }
    }

    private void HandshakeExpired()
    {
        if (!_handshakeDone)
        {
            Stop();
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
        CancelRequests();
        _readBudget.Close();
        _writeBudget.Close();
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

        // _slots is not disposed: a request abandoned at close (NbdConnection.Cancellation.cs) gives its slot back when it ends.
    }

    private static bool IsDisconnect(Exception e) =>
        e is EndOfStreamException or SocketException or ObjectDisposedException or OperationCanceledException
        || (e is IOException && e is not Block.BlockException);

    private void Log(string message) => _options.Log?.Invoke($"nbd: {message}");

    private static byte[] Rent(int length) => ArrayPool<byte>.Shared.Rent(length);

    private static void Return(byte[] buffer) => ArrayPool<byte>.Shared.Return(buffer);
}
