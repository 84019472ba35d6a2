using System.Net.Sockets;
using System.Text.Json;

namespace Strata.Daemon.Control;

/// <summary>
/// One control client (qmp-spec.rst): the greeting, capabilities negotiation, then commands, each
/// answered with <c>return</c> or <c>error</c> and the request's <c>id</c>.
/// </summary>
public sealed class QmpConnection : IDisposable
{
    /// <summary>A command longer than this is refused and the connection closed (no unbounded buffering).</summary>
    private const int MaxCommandBytes = 1024 * 1024;

    private readonly Socket _socket;
    private readonly StorageDaemon _daemon;
    private readonly Action<string>? _log;
    private readonly QmpCommands _commands;

    // Serializes writes to the socket: replies and events come from different tasks.
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private bool _negotiated;

    public QmpConnection(Socket socket, StorageDaemon daemon, Action<string>? log)
    {
        _socket = socket;
        _daemon = daemon;
        _log = log;
        _commands = new QmpCommands(daemon);
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(Greeting(), cancellationToken);
            var splitter = new JsonObjectSplitter(MaxCommandBytes);
            var buffer = new byte[4096];
            while (true)
            {
                int n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                if (n == 0)
                {
                    return;
                }

                foreach (var message in splitter.Push(buffer.AsSpan(0, n)))
                {
                    bool quit = await HandleAsync(message, cancellationToken);
                    if (quit)
                    {
                        _daemon.RequestStop();
                        return;
                    }
                }
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or IOException)
        {
            _log?.Invoke($"qmp: connection closed: {e.Message}");
        }
        finally
        {
            _daemon.EventRaised -= OnEvent;
        }
    }

    public void Close()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }

        _socket.Dispose();
    }

    public void Dispose()
    {
        Close();
        _sendLock.Dispose();
    }

    /// <summary>Runs one message; true when it was <c>quit</c> (the reply is sent first).</summary>
    private async Task<bool> HandleAsync(byte[] message, CancellationToken cancellationToken)
    {
        JsonElement? id = null;
        string? command = null;
        JsonElement arguments = default;
        try
        {
            using var document = JsonDocument.Parse(message);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                await SendErrorAsync(null, "GenericError", "QMP input must be a JSON object", cancellationToken);
                return false;
            }

            if (root.TryGetProperty("id", out var idElement))
            {
                id = idElement.Clone();
            }

            if (!root.TryGetProperty("execute", out var execute) || execute.ValueKind != JsonValueKind.String)
            {
                await SendErrorAsync(id, "GenericError", "QMP input lacks member 'execute'", cancellationToken);
                return false;
            }

            command = execute.GetString()!;
            if (root.TryGetProperty("arguments", out var args))
            {
                if (args.ValueKind != JsonValueKind.Object)
                {
                    await SendErrorAsync(id, "GenericError", "QMP input member 'arguments' must be an object", cancellationToken);
                    return false;
                }

                arguments = args.Clone();
            }
        }
        catch (JsonException e)
        {
            await SendErrorAsync(null, "GenericError", $"JSON parse error, {e.Message}", cancellationToken);
            return false;
        }

        _log?.Invoke($"qmp: {command}");
        if (!_negotiated)
        {
            if (command != "qmp_capabilities")
            {
                await SendErrorAsync(id, "CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'", cancellationToken);
                return false;
            }

            _negotiated = true;
            _daemon.EventRaised += OnEvent;
            await SendReturnAsync(id, w => { w.WriteStartObject(); w.WriteEndObject(); }, cancellationToken);
            return false;
        }

        if (command == "qmp_capabilities")
        {
            await SendErrorAsync(id, "CommandNotFound", "Capabilities negotiation is already complete, command ignored", cancellationToken);
            return false;
        }

        QmpResult result;
        try
        {
            result = await _commands.ExecuteAsync(command, arguments, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug, not the client's fault: answer, log, and keep the connection and the daemon up.
            _log?.Invoke($"qmp: {command} failed unexpectedly: {e}");
            result = QmpResult.Error($"internal error in {command}: {e.Message}");
        }

        if (result.ErrorClass is { } errorClass)
        {
            await SendErrorAsync(id, errorClass, result.ErrorDescription!, cancellationToken);
            return false;
        }

        await SendReturnAsync(id, result.WriteReturn!, cancellationToken);
        return command == "quit";
    }

    private static byte[] Greeting()
    {
        var version = typeof(QmpConnection).Assembly.GetName().Version ?? new Version(0, 1, 0);
        return Build(w =>
        {
            w.WriteStartObject();
            w.WriteStartObject("QMP");
            w.WriteStartObject("version");
            w.WriteStartObject("qemu");
            w.WriteNumber("major", version.Major);
            w.WriteNumber("minor", version.Minor);
            w.WriteNumber("micro", Math.Max(0, version.Build));
            w.WriteEndObject();
            w.WriteString("package", "strata");
            w.WriteEndObject();
            w.WriteStartArray("capabilities");
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    private Task SendReturnAsync(JsonElement? id, Action<Utf8JsonWriter> writeReturn, CancellationToken cancellationToken) =>
        SendAsync(Build(w =>
        {
            w.WriteStartObject();
            w.WritePropertyName("return");
            writeReturn(w);
            if (id is { } value)
            {
                w.WritePropertyName("id");
                value.WriteTo(w);
            }

            w.WriteEndObject();
        }), cancellationToken);

    private Task SendErrorAsync(JsonElement? id, string errorClass, string description, CancellationToken cancellationToken) =>
        SendAsync(Build(w =>
        {
            w.WriteStartObject();
            w.WriteStartObject("error");
            w.WriteString("class", errorClass);
            w.WriteString("desc", description);
            w.WriteEndObject();
            if (id is { } value)
            {
                w.WritePropertyName("id");
                value.WriteTo(w);
            }

            w.WriteEndObject();
        }), cancellationToken);

    private static byte[] Build(Action<Utf8JsonWriter> write)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            write(writer);
        }

        stream.Write("\r\n"u8);
        return stream.ToArray();
    }

    private async Task SendAsync(byte[] message, CancellationToken cancellationToken)
    {
        await _sendLock.WaitAsync(cancellationToken);
        try
        {
            int done = 0;
            while (done < message.Length)
            {
                done += await _socket.SendAsync(message.AsMemory(done), SocketFlags.None, cancellationToken);
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Forwards an event to this client; a client that has gone away is simply not told.</summary>
    private void OnEvent(QmpEvent e)
    {
        long micros = e.Timestamp.ToUnixTimeMilliseconds() * 1000 + (e.Timestamp.Ticks / 10 % 1000);
        var message = Build(w =>
        {
            w.WriteStartObject();
            w.WriteString("event", e.Name);
            w.WritePropertyName("data");
            e.WriteData(w);
            w.WriteStartObject("timestamp");
            w.WriteNumber("seconds", micros / 1_000_000);
            w.WriteNumber("microseconds", micros % 1_000_000);
            w.WriteEndObject();
            w.WriteEndObject();
        });
        _ = SendEventAsync(message);
    }

    private async Task SendEventAsync(byte[] message)
    {
        try
        {
            await SendAsync(message, CancellationToken.None);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            _log?.Invoke($"qmp: event not delivered: {ex.Message}");
        }
    }

}
