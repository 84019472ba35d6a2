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

    // Protects the socket's send side: held from the first to the last byte of one message.
    private readonly SemaphoreSlim _sendLock = new(1, 1);

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

    /// <summary>Sends one whole message, blocking (for sockets used synchronously only; see <see cref="SocketReader"/>).</summary>
    public void Send(ReadOnlySpan<byte> message)
    {
        _sendLock.Wait();
        try
        {
            while (!message.IsEmpty)
            {
                int n = _socket.Send(message, SocketFlags.None);
                message = message[n..];
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    public void Dispose() => _sendLock.Dispose();
}
