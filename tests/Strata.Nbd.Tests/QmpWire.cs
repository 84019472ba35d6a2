using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Strata.Nbd.Tests;

/// <summary>
/// The control socket's wire, for tests of the server itself: what a connection is greeted (or refused)
/// with before any negotiation, and bytes no client would send. It is not a client (it negotiates
/// nothing and reads every line as it comes): a test that talks QMP uses the product's QmpClient,
/// as an NBD test uses NbdClient and RawConnection only for the wire.
/// </summary>
public sealed class QmpWire : IDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly NetworkStream _stream;

    private QmpWire(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public static async Task<(QmpWire Client, JsonElement Greeting)> ConnectAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = new QmpWire(socket);
        return (client, await client.ReadAsync());
    }

    /// <summary>Sends <paramref name="json"/> as one line and returns the next reply (events are skipped).</summary>
    public async Task<JsonElement> ExchangeAsync(string json)
    {
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(json + "\n"));
        while (true)
        {
            var reply = await ReadAsync();
            if (!reply.TryGetProperty("event", out _))
            {
                return reply;
            }
        }
    }

    /// <summary>Sends <paramref name="bytes"/> as they are, for what no well-behaved client would send.</summary>
    public async Task SendRawAsync(byte[] bytes) => await _stream.WriteAsync(bytes);

    /// <summary>The next reply (events are skipped); fails with a clear message when none comes.</summary>
    public async Task<JsonElement> ReadReplyAsync()
    {
        while (true)
        {
            JsonElement message;
            try
            {
                message = await ReadAsync();
            }
            catch (OperationCanceledException e)
            {
                throw new TimeoutException("no reply from the control socket within 30 s", e);
            }

            if (!message.TryGetProperty("event", out _))
            {
                return message;
            }

            EventsSkipped++;
        }
    }

    /// <summary>How many events <see cref="ReadReplyAsync"/> passed over.</summary>
    public int EventsSkipped { get; private set; }

    /// <summary>Reads until the server closes the connection; fails when it does not within <paramref name="timeout"/>.</summary>
    public async Task<long> ReadToEndAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        long total = 0;
        try
        {
            while (await _reader.ReadLineAsync(cts.Token) is { } line)
            {
                total += line.Length;
            }
        }
        catch (OperationCanceledException e)
        {
            throw new TimeoutException($"the server did not close the connection within {timeout.TotalSeconds:0} s", e);
        }
        catch (IOException)
        {
            // Reset by the server: closed as well.
        }

        return total;
    }

    public async Task<JsonElement> ReadAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string line = await _reader.ReadLineAsync(timeout.Token) ?? throw new EndOfStreamException("the control socket closed");
        // Deep enough for any value the server echoes back (it refuses input nested past 1024).
        return JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 2048 }).RootElement.Clone();
    }

    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
    }
}
