using System.Buffers;
using System.Net.Sockets;

namespace Strata.Nbd.Transport;

/// <summary>
/// Send side of a stream socket shared by concurrent repliers: one message at a time, each sent whole,
/// so replies from requests that finish in any order never interleave on the wire.
/// </summary>
/// <remarks>
/// Uncontended, nothing here allocates: the semaphore hands out a cached completed task and a send
/// that fits the socket buffer completes synchronously.
/// </remarks>
internal sealed class SocketWriter : IDisposable
{
    private readonly Socket _socket;

    /// <summary>Messages up to this size are coalesced while corked; larger ones go straight out.</summary>
    private const int CoalesceLimit = 64 * 1024;

    private const int PendingCapacity = 256 * 1024;

    // Protects the socket's send side and _pending/_pendingLength: held from the first to the last byte of one message.
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private byte[]? _pending;
    private int _pendingLength;

    // While set, small messages are gathered in _pending and leave in one send at Uncork (MSG_MORE's idea).
    private volatile bool _corked;

    public SocketWriter(Socket socket) => _socket = socket;

    public async ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        await _sendLock.WaitAsync(cancellationToken);
        try
        {
            while (!message.IsEmpty)
            {
                int n = await _socket.SendAsync(message, SocketFlags.None, cancellationToken);
                message = message[n..];
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// Sends one whole message, blocking (for sockets used synchronously only; see <see cref="SocketReader"/>).
    /// While corked, a small message is only queued: the corker promises to <see cref="Uncork"/> before it waits for anything.
    /// </summary>
    public void Send(ReadOnlySpan<byte> message)
    {
        _sendLock.Wait();
        try
        {
            if (_corked && message.Length <= CoalesceLimit)
            {
                _pending ??= ArrayPool<byte>.Shared.Rent(PendingCapacity);
                if (_pendingLength + message.Length > _pending.Length)
                {
                    FlushPending();
                }

                message.CopyTo(_pending.AsSpan(_pendingLength));
                _pendingLength += message.Length;
                return;
            }

            FlushPending();
            SendAll(message);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// Takes the send side for one message sent in parts (a reply streamed piece by piece, each read
    /// while the side is held); nothing else is sent until the lease is disposed. Blocking, like <see cref="Send"/>.
    /// </summary>
    public Lease BeginMessage()
    {
        _sendLock.Wait();
        try
        {
            FlushPending();
        }
        catch
        {
            _sendLock.Release();
            throw;
        }

        return new Lease(this);
    }

    /// <summary>Starts gathering small replies (the receive loop has more requests buffered to run).</summary>
    public void Cork() => _corked = true;

    /// <summary>Sends whatever was gathered and stops gathering (the receive loop is about to wait).</summary>
    public void Uncork()
    {
        if (!_corked)
        {
            return;
        }

        _sendLock.Wait();
        try
        {
            _corked = false;
            FlushPending();
        }
        finally
        {
            _sendLock.Release();
        }
    }

    public void Dispose()
    {
        _sendLock.Dispose();
        if (Interlocked.Exchange(ref _pending, null) is { } pending)
        {
            ArrayPool<byte>.Shared.Return(pending);
        }
    }

    private void FlushPending()
    {
        if (_pendingLength > 0)
        {
            int length = _pendingLength;
            _pendingLength = 0;
            SendAll(_pending.AsSpan(0, length));
        }
    }

    /// <summary>The send side held for one message (<see cref="BeginMessage"/>); each part goes straight out.</summary>
    public readonly struct Lease(SocketWriter writer) : IDisposable
    {
        public void Send(ReadOnlySpan<byte> part) => writer.SendAll(part);

        public void Dispose() => writer._sendLock.Release();
    }

    private void SendAll(ReadOnlySpan<byte> message)
    {
        while (!message.IsEmpty)
        {
            int n = _socket.Send(message, SocketFlags.None);
            message = message[n..];
        }
    }
}
