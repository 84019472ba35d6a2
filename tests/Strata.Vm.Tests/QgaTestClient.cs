using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Strata.Vm.Tests;

/// <summary>
/// The few qemu-ga calls the VM tests need, spoken straight to the agent socket (the host end of the
/// guest's virtio-serial port): guest-sync-delimited to start clean, then one command at a time, each
/// with a timeout. It stands in for the daemon's own guest channel (`strata serve --guest`,
/// `guest_cmd begin_snapshot/end_snapshot`) until that lands; the tests should then call those.
/// </summary>
public sealed class QgaTestClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[4096];
    private int _start;
    private int _end;
    private long _nextSync = 0x5157_0000;

    private QgaTestClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
    }

    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Connects and synchronises: sends 0xFF and guest-sync-delimited, skips everything up to the agent's 0xFF, and checks the id.</summary>
    public static async Task<QgaTestClient> ConnectAsync(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        var client = new QgaTestClient(socket);
        await client.SyncAsync(CallTimeout);
        return client;
    }

    public async Task SyncAsync(TimeSpan timeout)
    {
        using var bound = new CancellationTokenSource(timeout);
        long id = ++_nextSync;
        await _stream.WriteAsync(new byte[] { 0xFF }, bound.Token);
        await SendAsync("guest-sync-delimited", new JsonObject { ["id"] = id }, bound.Token);
        try
        {
            while (await ReadByteAsync(bound.Token) != 0xFF)
            {
                // Stale bytes from before the resynchronisation.
            }

            var reply = await ReadReplyAsync(bound.Token);
            if (reply["return"]?.GetValue<long>() != id)
            {
                throw new InvalidOperationException($"guest-sync-delimited {id} was answered with {reply.ToJsonString()}");
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the guest agent did not answer guest-sync-delimited within {timeout.TotalSeconds:0} s");
        }
    }

    /// <summary>Runs a command; returns its "return" value, or throws with the agent's error class and text, or a <see cref="TimeoutException"/>.</summary>
    public async Task<JsonNode?> CallAsync(string command, JsonObject? arguments = null, TimeSpan? timeout = null)
    {
        var limit = timeout ?? CallTimeout;
        using var bound = new CancellationTokenSource(limit);
        try
        {
            await SendAsync(command, arguments, bound.Token);
            var reply = await ReadReplyAsync(bound.Token);
            if (reply["error"] is JsonObject error)
            {
                throw new InvalidOperationException($"{command}: {error["class"]}: {error["desc"]}");
            }

            return reply["return"];
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the guest agent did not answer {command} within {limit.TotalSeconds:0} s");
        }
    }

    /// <summary>Sends a command that has no reply when it succeeds (guest-shutdown).</summary>
    public async Task SendAsync(string command, JsonObject? arguments = null, CancellationToken cancellationToken = default)
    {
        var message = new JsonObject { ["execute"] = command };
        if (arguments is not null)
        {
            message["arguments"] = arguments;
        }

        await _stream.WriteAsync(Encoding.UTF8.GetBytes(message.ToJsonString() + "\n"), cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _socket.Dispose();
    }

    private async Task<JsonObject> ReadReplyAsync(CancellationToken cancellationToken)
    {
        var line = new List<byte>();
        for (byte b; (b = await ReadByteAsync(cancellationToken)) != (byte)'\n';)
        {
            line.Add(b);
        }

        return JsonNode.Parse(line.ToArray()) as JsonObject ?? throw new InvalidOperationException("the agent's reply is not a JSON object");
    }

    private async ValueTask<byte> ReadByteAsync(CancellationToken cancellationToken)
    {
        if (_start == _end)
        {
            _start = 0;
            _end = await _stream.ReadAsync(_buffer, cancellationToken);
            if (_end == 0)
            {
                throw new IOException("the agent socket closed");
            }
        }

        return _buffer[_start++];
    }
}
