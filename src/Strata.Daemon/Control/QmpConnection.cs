using System.Net.Sockets;
using System.Text.Json;

namespace Strata.Daemon.Control;

/// <summary>
/// One control client (qmp-spec.rst): the greeting, capabilities negotiation, then commands, each
/// answered with <c>return</c> or <c>error</c> and the request's <c>id</c>. Bad input of any kind is
/// answered with an error and the connection goes on (DESIGN.md rule 5): <see cref="QmpMessageReader"/>
/// cuts and parses the messages, the envelope is checked here as QEMU's qapi/qmp-dispatch.c checks
/// it, and the arguments by <see cref="QmpCommands.CheckArguments"/>.
/// </summary>
public sealed class QmpConnection : IDisposable
{
    /// <summary>
    /// Output queued for one client and not yet taken by its socket (docs/serve.md). Past it, a client
    /// that does not read its events is disconnected, so it cannot make the daemon hold an unbounded
    /// backlog; 1 MiB is thousands of events.
    /// </summary>
    public const int MaxQueuedOutputBytes = 1024 * 1024;

    private readonly Socket _socket;
    private readonly StorageDaemon _daemon;
    private readonly Action<string>? _log;
    private readonly QmpCommands _commands;
    private readonly QmpOutbox _outbox;
    private bool _negotiated;
    private int _cutOff;

    public QmpConnection(Socket socket, StorageDaemon daemon, Action<string>? log)
    {
        _socket = socket;
        _daemon = daemon;
        _log = log;
        _commands = new QmpCommands(daemon);
        _outbox = new QmpOutbox(socket, MaxQueuedOutputBytes);
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _outbox.SendAsync(Greeting(), cancellationToken);
            var reader = new QmpMessageReader();
            var buffer = new byte[4096];
            while (true)
            {
                int n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                if (n == 0)
                {
                    return;
                }

                foreach (var input in reader.Push(buffer.AsSpan(0, n)))
                {
                    bool quit = await HandleAsync(input, cancellationToken);
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
            _outbox.Complete();

            // A freeze this client made must not outlive it (docs/guest.md, "A freeze always thaws").
            await _commands.ReleaseGuestsAsync();
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
        _outbox.Complete();
        Close();
    }

    /// <summary>A whole error message (qmp-spec.rst, "Error"), CRLF-terminated, e.g. for a client refused at accept.</summary>
    internal static byte[] ErrorMessage(JsonElement? id, string errorClass, string description) => Build(w =>
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
    });

    /// <summary>Runs one message; true when it was <c>quit</c> (the reply is sent first).</summary>
    private async Task<bool> HandleAsync(QmpInput input, CancellationToken cancellationToken)
    {
        if (input.Error is { } parseError)
        {
            await SendErrorAsync(null, "GenericError", parseError, cancellationToken);
            return false;
        }

        if (Envelope(input.Value, out var id, out string? command, out var arguments) is { } envelopeError)
        {
            await SendErrorAsync(id, "GenericError", envelopeError, cancellationToken);
            return false;
        }

        // Only names from the table reach the log: a client's string could hold a newline.
        _log?.Invoke($"qmp: {(QmpCommands.Names.Contains(command) ? command : "(unknown command)")}");
        if (command == "qmp_capabilities")
        {
            await NegotiateAsync(id, arguments, cancellationToken);
            return false;
        }

        if (!_negotiated)
        {
            await SendErrorAsync(id, "CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'", cancellationToken);
            return false;
        }

        QmpResult result;
        try
        {
            result = await _commands.ExecuteAsync(command!, arguments, cancellationToken);
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

    /// <summary>
    /// Checks a request's envelope as qapi/qmp-dispatch.c does: an object whose members are
    /// <c>execute</c> (a string, required), <c>arguments</c> (an object) and <c>id</c> (anything,
    /// echoed even in the errors found here); returns the error, or null.
    /// </summary>
    private static string? Envelope(JsonElement request, out JsonElement? id, out string? command, out JsonElement arguments)
    {
        id = null;
        command = null;
        arguments = default;
        if (request.ValueKind != JsonValueKind.Object)
        {
            return "QMP input must be a JSON object";
        }

        if (request.TryGetProperty("id", out var idElement))
        {
            id = idElement;
        }

        foreach (var member in request.EnumerateObject())
        {
            switch (member.Name)
            {
                case "id":
                    break;
                case "execute" when member.Value.ValueKind == JsonValueKind.String:
                    command = member.Value.GetString();
                    break;
                case "execute":
                    return "QMP input member 'execute' must be a string";
                case "arguments" when member.Value.ValueKind == JsonValueKind.Object:
                    arguments = member.Value;
                    break;
                case "arguments":
                    return "QMP input member 'arguments' must be an object";
                default:
                    return $"QMP input member '{member.Name}' is unexpected";
            }
        }

        return command is null ? "QMP input lacks member 'execute'" : null;
    }

    /// <summary>qmp_capabilities (qmp-spec.rst, "Capabilities Negotiation"): no capability is offered, so "enable" must be empty.</summary>
    private async Task NegotiateAsync(JsonElement? id, JsonElement arguments, CancellationToken cancellationToken)
    {
        string? error = null;
        try
        {
            QmpCommands.CheckArguments("qmp_capabilities", arguments);
            if (arguments.ValueKind == JsonValueKind.Object && arguments.TryGetProperty("enable", out var enable)
                && enable.EnumerateArray().FirstOrDefault() is { ValueKind: not JsonValueKind.Undefined } capability)
            {
                error = $"Capability '{capability}' not available";
            }
        }
        catch (QmpException e)
        {
            error = e.Message;
        }

        if (error is not null)
        {
            await SendErrorAsync(id, "GenericError", error, cancellationToken);
            return;
        }

        if (_negotiated)
        {
            await SendErrorAsync(id, "CommandNotFound", "Capabilities negotiation is already complete, command ignored", cancellationToken);
            return;
        }

        _negotiated = true;
        _daemon.EventRaised += OnEvent;
        await SendReturnAsync(id, w => { w.WriteStartObject(); w.WriteEndObject(); }, cancellationToken);
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
        _outbox.SendAsync(Build(w =>
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
        _outbox.SendAsync(ErrorMessage(id, errorClass, description), cancellationToken);

    /// <summary>A message as JSON and CRLF; deep enough for an id echoed back at the nesting the reader allows.</summary>
    private static byte[] Build(Action<Utf8JsonWriter> write)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { MaxDepth = QmpMessageReader.MaxNesting + 1 }))
        {
            write(writer);
        }

        stream.Write("\r\n"u8);
        return stream.ToArray();
    }

    /// <summary>
    /// Forwards an event to this client without waiting for it. A client whose queued output would
    /// pass <see cref="MaxQueuedOutputBytes"/> is not reading: it is disconnected, once, with a log
    /// line, and the other clients are not held up by it.
    /// </summary>
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
        if (!_outbox.TryPost(message) && Interlocked.Exchange(ref _cutOff, 1) == 0)
        {
            _daemon.EventRaised -= OnEvent;
            _log?.Invoke($"qmp: client not reading: more than {MaxQueuedOutputBytes} bytes of output queued for it; disconnected");
            Close();
        }
    }
}
