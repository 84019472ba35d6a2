using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Strata.Nbd.Tests;

/// <summary>A line-at-a-time QMP client for tests.</summary>
public sealed class QmpTestClient : IDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly NetworkStream _stream;

    private QmpTestClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public static async Task<(QmpTestClient Client, JsonElement Greeting)> ConnectAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = new QmpTestClient(socket);
        return (client, await client.ReadAsync());
    }

    public async Task<JsonElement> ExecuteAsync(string json)
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

    public async Task<JsonElement> ReadAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string line = await _reader.ReadLineAsync(timeout.Token) ?? throw new EndOfStreamException("the control socket closed");
        return JsonDocument.Parse(line).RootElement.Clone();
    }

    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
    }
}
