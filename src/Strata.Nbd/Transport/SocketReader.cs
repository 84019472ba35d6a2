using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;

namespace Strata.Nbd.Transport;

/// <summary>
/// Buffered receive side of a stream socket: small headers are parsed from one pooled buffer filled
/// by as few receive calls as possible (a pipelining client sends many headers per segment); large
/// payloads bypass the buffer and land straight in their destination.
/// </summary>
/// <remarks>
/// Synchronous methods are for a socket owned by one dedicated thread (the server's connections);
/// asynchronous ones for the client. One socket uses one kind only: on Linux, .NET emulates blocking
/// calls once a socket has seen an asynchronous one, through its event loop, which costs a thread hop.
/// </remarks>
internal sealed class SocketReader : IDisposable
{
    private const int BufferSize = 64 * 1024;

    private readonly Socket _socket;
    private readonly ReceivePoll? _poll;
    private readonly Func<bool>? _mayPoll;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
    private int _start;
    private int _end;

    /// <param name="pollMax">The longest a blocking receive first polls the socket (<see cref="ReceivePoll"/>); zero never polls.</param>
    /// <param name="mayPoll">Asked before each poll; false blocks at once (the server: while other requests are in flight).</param>
    public SocketReader(Socket socket, TimeSpan pollMax = default, Func<bool>? mayPoll = null)
    {
        _socket = socket;
        _mayPoll = mayPoll;
        var poll = new ReceivePoll(pollMax);
        _poll = poll.Enabled ? poll : null;
    }

    public int Buffered => _end - _start;

    /// <summary>Fills <paramref name="destination"/> completely; throws <see cref="EndOfStreamException"/> if the peer closes first.</summary>
    public ValueTask ReadExactlyAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        int buffered = _end - _start;
        if (buffered >= destination.Length)
        {
            _buffer.AsSpan(_start, destination.Length).CopyTo(destination.Span);
            _start += destination.Length;
            return ValueTask.CompletedTask;
        }

        return ReadSlowAsync(destination, cancellationToken);
    }

    /// <summary>Reads and throws away <paramref name="count"/> bytes (a payload the server refuses but must drain).</summary>
    public async ValueTask SkipAsync(long count, CancellationToken cancellationToken)
    {
        while (count > 0)
        {
            if (_start == _end)
            {
                await FillAsync(cancellationToken);
            }

            int n = (int)Math.Min(count, _end - _start);
            _start += n;
            count -= n;
        }
    }

    /// <summary>Fills <paramref name="destination"/> completely, blocking; throws <see cref="EndOfStreamException"/> if the peer closes first.</summary>
    public void ReadExactly(Span<byte> destination)
    {
        int buffered = _end - _start;
        if (buffered >= destination.Length)
        {
            _buffer.AsSpan(_start, destination.Length).CopyTo(destination);
            _start += destination.Length;
            return;
        }

        _buffer.AsSpan(_start, buffered).CopyTo(destination);
        _start = _end = 0;
        int done = buffered;
        if (destination.Length - done >= BufferSize / 2)
        {
            while (done < destination.Length)
            {
                int n = Receive(destination[done..]);
                if (n == 0)
                {
                    throw new EndOfStreamException("the peer closed the connection");
                }

                done += n;
            }

            return;
        }

        while (done < destination.Length)
        {
            Fill();
            int n = Math.Min(_end - _start, destination.Length - done);
            _buffer.AsSpan(_start, n).CopyTo(destination[done..]);
            _start += n;
            done += n;
        }
    }

    /// <summary>Reads and throws away <paramref name="count"/> bytes, blocking.</summary>
    public void Skip(long count)
    {
        while (count > 0)
        {
            if (_start == _end)
            {
                Fill();
            }

            int n = (int)Math.Min(count, _end - _start);
            _start += n;
            count -= n;
        }
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async ValueTask ReadSlowAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        int buffered = _end - _start;
        _buffer.AsMemory(_start, buffered).CopyTo(destination);
        _start = _end = 0;
        int done = buffered;
        if (destination.Length - done >= BufferSize / 2)
        {
            // A large payload: receive it in place rather than copy it through the buffer.
            while (done < destination.Length)
            {
                int n = await _socket.ReceiveAsync(destination[done..], SocketFlags.None, cancellationToken);
                if (n == 0)
                {
                    throw new EndOfStreamException("the peer closed the connection");
                }

                done += n;
            }

            return;
        }

        while (done < destination.Length)
        {
            await FillAsync(cancellationToken);
            int n = Math.Min(_end - _start, destination.Length - done);
            _buffer.AsMemory(_start, n).CopyTo(destination[done..]);
            _start += n;
            done += n;
        }
    }

    private void Fill()
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }

        int n = Receive(_buffer.AsSpan(_end));
        if (n == 0)
        {
            throw new EndOfStreamException("the peer closed the connection");
        }

        _end += n;
    }

    /// <summary>One blocking receive into <paramref name="into"/>, polled for first while the client keeps answering quickly.</summary>
    private int Receive(Span<byte> into)
    {
        if (_poll is null)
        {
            return _socket.Receive(into, SocketFlags.None);
        }

        long start = Stopwatch.GetTimestamp();
        bool ready = (_mayPoll?.Invoke() ?? true) && _poll.Poll(_socket, start);
        int n = _socket.Receive(into, SocketFlags.None);
        if (!ready)
        {
            _poll.Waited(Stopwatch.GetTimestamp() - start);
        }

        return n;
    }

    private async ValueTask FillAsync(CancellationToken cancellationToken)
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }

        int n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
        if (n == 0)
        {
            throw new EndOfStreamException("the peer closed the connection");
        }

        _end += n;
    }
}
