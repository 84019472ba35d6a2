using System.Net.Sockets;
using System.Threading.Channels;

namespace Strata.Daemon.Control;

/// <summary>
/// What one control client is sent, in order, by one send loop: replies, which their command waits
/// for (so a client that sends commands without reading replies is simply no longer read), and events,
/// which are queued without waiting, so whoever raises an event never waits for a slow client. The
/// bytes queued and not yet taken by the socket are bounded: a message that would pass the bound is
/// refused, and the connection is then closed by its owner. A message on an empty queue is always
/// taken, however long, so one large reply is never refused to a client that reads.
/// </summary>
internal sealed class QmpOutbox
{
    private readonly Socket _socket;
    private readonly long _maxQueuedBytes;
    private readonly Channel<(byte[] Bytes, TaskCompletionSource? Sent)> _queue =
        Channel.CreateUnbounded<(byte[], TaskCompletionSource?)>(new UnboundedChannelOptions { SingleReader = true });

    // Bytes in _queue plus the message being sent; changed with Interlocked only.
    private long _queuedBytes;

    public QmpOutbox(Socket socket, long maxQueuedBytes)
    {
        _socket = socket;
        _maxQueuedBytes = maxQueuedBytes;

        // Runs until Complete or until the socket fails; it catches what it expects and nobody awaits it.
        _ = SendLoopAsync();
    }

    /// <summary>Queues <paramref name="message"/> without waiting; false when that would pass the bound (nothing is queued then).</summary>
    public bool TryPost(byte[] message) => Enqueue(message, null);

    /// <summary>Queues <paramref name="message"/> and waits until the socket has taken it.</summary>
    public async Task SendAsync(byte[] message, CancellationToken cancellationToken)
    {
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!Enqueue(message, sent))
        {
            throw new IOException($"more than {_maxQueuedBytes} bytes of output are waiting for the client");
        }

        await sent.Task.WaitAsync(cancellationToken);
    }

    /// <summary>No more messages: the loop sends what is queued and stops.</summary>
    public void Complete() => _queue.Writer.TryComplete();

    private bool Enqueue(byte[] message, TaskCompletionSource? sent)
    {
        long queued = Interlocked.Add(ref _queuedBytes, message.Length);
        if (queued > _maxQueuedBytes && queued > message.Length)
        {
            Interlocked.Add(ref _queuedBytes, -message.Length);
            return false;
        }

        if (!_queue.Writer.TryWrite((message, sent)))
        {
            Interlocked.Add(ref _queuedBytes, -message.Length);
            sent?.TrySetException(new IOException("the control connection is closed"));
        }

        return true;
    }

    private async Task SendLoopAsync()
    {
        TaskCompletionSource? sending = null;
        try
        {
            await foreach (var (bytes, sent) in _queue.Reader.ReadAllAsync())
            {
                sending = sent;
                for (int done = 0; done < bytes.Length;)
                {
                    done += await _socket.SendAsync(bytes.AsMemory(done), SocketFlags.None);
                }

                Interlocked.Add(ref _queuedBytes, -bytes.Length);
                sending = null;
                sent?.TrySetResult();
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            // The client is gone or was cut off: whatever is still queued is never sent, and a
            // command waiting for its reply learns so.
            _queue.Writer.TryComplete();
            var closed = new IOException("the control connection is closed", e);
            sending?.TrySetException(closed);
            while (_queue.Reader.TryRead(out var item))
            {
                item.Sent?.TrySetException(closed);
            }
        }
    }
}
