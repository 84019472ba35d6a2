using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Strata.Daemon.Control;

/// <summary>
/// A control client for a QMP socket (ours or QEMU's): reads the greeting, negotiates capabilities,
/// runs commands one at a time and queues the events that arrive in between.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private const int MaxMessageBytes = 16 * 1024 * 1024;

    private readonly Socket _socket;
    private readonly Channel<JsonObject> _replies = Channel.CreateUnbounded<JsonObject>();
    private readonly Channel<JsonObject> _events = Channel.CreateUnbounded<JsonObject>();

    // One command at a time: QMP answers in order, and ids are not needed to match replies.
    private readonly SemaphoreSlim _commandLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private Task? _receiver;

    private QmpClient(Socket socket) => _socket = socket;

    // Why the client closed itself, when the server broke the protocol; null otherwise.
    private volatile string? _broken;

    /// <summary>The greeting's "QMP" object.</summary>
    public JsonObject? Greeting { get; private set; }

    /// <summary>Events received and not yet taken by <see cref="WaitForEventAsync"/>.</summary>
    public ChannelReader<JsonObject> Events => _events.Reader;

    public static async Task<QmpClient> ConnectAsync(string socketPath, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"cannot connect to '{socketPath}': {e.Message}", e);
        }

        var client = new QmpClient(socket);
        client._receiver = Task.Run(client.ReceiveAsync, CancellationToken.None);
        JsonObject greeting;
        try
        {
            greeting = await client._replies.Reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException e)
        {
            await client.DisposeAsync();
            throw new IOException(client._broken ?? "the server closed the connection before its greeting", e);
        }

        client.Greeting = greeting["QMP"] as JsonObject ?? throw new IOException("the server did not send a QMP greeting");
        await client.ExecuteAsync("qmp_capabilities", null, cancellationToken);
        return client;
    }

    /// <summary>Runs a command; returns its "return" value, or throws <see cref="QmpException"/> with the error's class and text.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject? arguments = null, CancellationToken cancellationToken = default)
    {
        var message = new JsonObject { ["execute"] = command };
        if (arguments is not null)
        {
            message["arguments"] = arguments;
        }

        var reply = await SendAsync(message, cancellationToken);
        if (reply["error"] is JsonObject error)
        {
            throw new QmpException(error["desc"]?.GetValue<string>() ?? "error", error["class"]?.GetValue<string>() ?? "GenericError");
        }

        return reply["return"];
    }

    /// <summary>Sends any JSON message (a command typed by a user) and returns the whole reply.</summary>
    public async Task<JsonObject> SendAsync(JsonObject message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        await _commandLock.WaitAsync(cancellationToken);
        try
        {
            byte[] bytes = Encoding.UTF8.GetBytes(message.ToJsonString() + "\n");
            await _socket.SendAsync(bytes, SocketFlags.None, cancellationToken);
            return await _replies.Reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException e)
        {
            throw new IOException(_broken ?? "the control socket closed", e);
        }
        finally
        {
            _commandLock.Release();
        }
    }

    /// <summary>Waits for the next event named <paramref name="name"/> (others are skipped) within <paramref name="timeout"/>.</summary>
    public async Task<JsonObject> WaitForEventAsync(string name, TimeSpan timeout, Func<JsonObject, bool>? match = null)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var e = await _events.Reader.ReadAsync(cts.Token);
                if (e["event"]?.GetValue<string>() == name && (match is null || match(e)))
                {
                    return e;
                }
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"no {name} event within {timeout.TotalSeconds:0} s");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        if (_receiver is not null)
        {
            await _receiver;
        }

        _stop.Dispose();
        _commandLock.Dispose();
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[65536];
        var pending = new List<byte>();
        try
        {
            while (true)
            {
                int n = await _socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                {
                    break;
                }

                pending.AddRange(buffer.AsSpan(0, n));
                int newline;
                while ((newline = pending.IndexOf((byte)'\n')) >= 0)
                {
                    var line = pending.GetRange(0, newline).ToArray();
                    pending.RemoveRange(0, newline + 1);
                    if (!Dispatch(line))
                    {
                        return;
                    }
                }

                if (pending.Count > MaxMessageBytes)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Closed by us or by the server.
        }
        finally
        {
            _replies.Writer.TryComplete();
            _events.Writer.TryComplete();
            if (_broken is not null)
            {
                // Nothing more from this server can be matched to a command: hang up.
                try
                {
                    _socket.Shutdown(SocketShutdown.Both);
                }
                catch (SocketException)
                {
                }
            }
        }
    }

    /// <summary>
    /// Passes one line on as a reply or an event. A line that is no JSON object breaks the protocol:
    /// no reply can be matched to its command any more, so the client closes (false) and the command
    /// waiting fails with the reason instead of waiting for ever.
    /// </summary>
    private bool Dispatch(byte[] line)
    {
        if (line.AsSpan().Trim((byte)'\r').IsEmpty)
        {
            return true;
        }

        JsonObject? message;
        try
        {
            message = JsonNode.Parse(line) as JsonObject;
        }
        catch (JsonException e)
        {
            _broken = $"the server sent a line that is not valid JSON ({e.Message})";
            return false;
        }

        if (message is null)
        {
            _broken = "the server sent a line that is not a JSON object";
            return false;
        }

        if (message.ContainsKey("event"))
        {
            _events.Writer.TryWrite(message);
        }
        else
        {
            _replies.Writer.TryWrite(message);
        }

        return true;
    }
}
