using System.Buffers;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Strata.Nbd.Transport;

/// <summary>
/// Send side of a stream socket shared by concurrent repliers: one message at a time, each sent whole,
/// so replies from requests that finish in any order never interleave on the wire.
/// </summary>
/// <remarks>
/// Uncontended, nothing here allocates: the semaphore hands out a cached completed task and a send
/// that fits the socket buffer completes synchronously.
/// </remarks>
internal sealed partial class SocketWriter : IDisposable
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
            if (!TryGather(message))
            {
                // Full, or not gathering: what was gathered goes first; then this is gathered or sent.
                FlushPending();
                if (!TryGather(message))
                {
                    SendAll(message);
                }
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// Sends one whole message only as far as that needs no waiting: for a thread that must not block
    /// (a storage library's callback thread, <see cref="Strata.Block.InlineCompletion"/>), and for any
    /// reply that should not hold a thread while another message has the send side. The send side
    /// must be free, and the socket takes what fits now (MSG_DONTWAIT). Nothing sent: the caller sends
    /// the message again later (<see cref="BeginMessageAsync"/>). Part of it sent: the send side stays
    /// held, so that no other message comes between; the caller sends the rest through
    /// <see cref="SendAttempt.Held"/> from a thread that may block, and disposes it.
    /// </summary>
    public SendAttempt TrySend(ReadOnlySpan<byte> message)
    {
        if (!_sendLock.Wait(0))
        {
            return default;
        }

        int sent = 0;
        try
        {
            if (TryGather(message))
            {
                sent = message.Length;
            }
            else if (_pendingLength == 0)
            {
                sent = SendWithoutWaiting(message);
            }
        }
        finally
        {
            if (sent == 0 || sent == message.Length)
            {
                _sendLock.Release();
            }
        }

        return sent == message.Length ? new SendAttempt(sent, default, whole: true)
            : sent == 0 ? default
            : new SendAttempt(sent, new Lease(this), whole: false);
    }

    /// <summary>
    /// Takes the send side for one message sent in parts (a reply streamed piece by piece, each read
    /// while the side is held); nothing else is sent until the lease is disposed. Blocking, like <see cref="Send"/>.
    /// </summary>
    public Lease BeginMessage()
    {
        _sendLock.Wait();
        return Leased();
    }

    /// <summary><see cref="BeginMessage"/> only if the send side is free now; false (nothing held) if not.</summary>
    public bool TryBeginMessage(out Lease lease)
    {
        if (!_sendLock.Wait(0))
        {
            lease = default;
            return false;
        }

        lease = Leased();
        return true;
    }

    /// <summary>
    /// <see cref="BeginMessage"/>, but waiting for the send side holds no thread: for a message that
    /// may wait behind another one blocked in the socket (a client that stopped reading).
    /// </summary>
    public async ValueTask<Lease> BeginMessageAsync()
    {
        await _sendLock.WaitAsync();
        return Leased();
    }

    /// <summary>The send side, just taken, as a lease: what was gathered goes out first.</summary>
    private Lease Leased()
    {
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

    /// <summary>While corked, queues a small message that still fits behind what was gathered; false (nothing queued) otherwise. Under the send side.</summary>
    private bool TryGather(ReadOnlySpan<byte> message)
    {
        if (!_corked || message.Length > CoalesceLimit || _pendingLength + message.Length > PendingCapacity)
        {
            return false;
        }

        _pending ??= ArrayPool<byte>.Shared.Rent(PendingCapacity);
        message.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength += message.Length;
        return true;
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

    /// <summary>What <see cref="TrySend"/> did: the whole message, nothing, or <see cref="Sent"/> bytes with the send side <see cref="Held"/>.</summary>
    public readonly struct SendAttempt(int sent, Lease held, bool whole)
    {
        public bool IsWhole => whole;

        /// <summary>Bytes of the message that left; 0 when nothing did.</summary>
        public int Sent => sent;

        /// <summary>When part of the message left: the send side, held for its rest.</summary>
        public Lease Held => held;
    }

    private const int MsgDontWait = 0x40;
    private const int MsgNoSignal = 0x4000;
    private const int EINTR = 4;

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static unsafe partial nint SendNative(int socket, byte* buffer, nuint length, int flags);

    /// <summary>send(2) with MSG_DONTWAIT until the socket takes no more: the bytes sent. An error sends no more (the blocking send that follows reports it).</summary>
    private unsafe int SendWithoutWaiting(ReadOnlySpan<byte> message)
    {
        var handle = _socket.SafeHandle;
        bool added = false;
        int sent = 0;
        try
        {
            handle.DangerousAddRef(ref added);
            int fd = (int)handle.DangerousGetHandle();
            fixed (byte* start = message)
            {
                while (sent < message.Length)
                {
                    nint n = SendNative(fd, start + sent, (nuint)(message.Length - sent), MsgDontWait | MsgNoSignal);
                    if (n > 0)
                    {
                        sent += (int)n;
                    }
                    else if (n < 0 && Marshal.GetLastPInvokeError() == EINTR)
                    {
                        continue;
                    }
                    else
                    {
                        break;
                    }
                }
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }

        return sent;
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
