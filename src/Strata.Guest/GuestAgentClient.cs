using System.Buffers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Strata.Guest;

/// <summary>
/// One connection to a guest agent speaking qemu-ga's protocol (qga/qapi-schema.json): JSON
/// requests, one reply per line, over the unix socket of the VM's virtio-serial port, where QEMU's
/// chardev is the server and Strata the client.
/// <para>
/// The stream is in step only after a sync. qemu-ga has no session: a reply to a command that timed
/// out, or to another client's, can arrive at any time. So before the first call, and after any
/// timeout or bad reply, the client sends 0xFF (which resets the agent's JSON parser) and
/// guest-sync-delimited with a fresh id, skips everything up to the 0xFF the agent writes before its
/// reply, and then skips every line until the reply carrying that id: what came before is stale and
/// is never taken for a new reply. Each call also carries its own "id", which qemu-ga echoes
/// (qapi/qmp-dispatch.c); a reply with another id is a lie and is refused. Calls are serialized:
/// one request is in flight at a time, so the next line after a request is its reply.
/// </para>
/// </summary>
public sealed class GuestAgentClient : IAsyncDisposable
{
    /// <summary>Lines skipped after the delimiter while looking for the sync reply; beyond it the agent is not in step.</summary>
    private const int MaxStaleLines = 64;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly AgentLineReader _reader;
    private readonly GuestAgentOptions _options;

    // One call at a time: a reply is matched to the only request in flight.
    private readonly SemaphoreSlim _calls = new(1, 1);

    // Under _calls. The ids of syncs and calls; starts at a random point so that a stale reply from an
    // earlier connection (another client's, the freeze-watch's) cannot match one of ours by chance.
    private long _nextId = Random.Shared.Next(1, int.MaxValue / 2);
    private bool _inStep;
    private bool _closed;

    private GuestAgentClient(Socket socket, string socketPath, GuestAgentOptions options, bool ownsConnection = true)
    {
        _socket = socket;

        // A stream that owns its socket shuts the connection down when it is disposed, for every
        // holder of it: right for our own connection (a copy the freeze watch still holds must not
        // keep the chardev's one client slot), wrong for a copy of someone else's.
        _stream = new NetworkStream(socket, ownsSocket: ownsConnection);
        _reader = new AgentLineReader(_stream, options.MaxLineBytes);
        _options = options;
        SocketPath = socketPath;
    }

    public string SocketPath { get; }

    /// <summary>The connected socket, for the freeze watch to get a copy of (<see cref="IFreezeWatch.Arm"/>).</summary>
    internal System.Runtime.InteropServices.SafeHandle Handle => _socket.SafeHandle;

    /// <summary>True once the agent closed the connection or the client was disposed: only a new connection helps.</summary>
    public bool IsClosed => Volatile.Read(ref _closed);

    /// <summary>Connects to the agent's socket; throws <see cref="GuestAgentException"/> (<see cref="GuestAgentErrorKind.NoAgent"/>) when nothing answers there.</summary>
    public static async Task<GuestAgentClient> ConnectAsync(string socketPath, GuestAgentOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socketPath);
        options ??= new GuestAgentOptions();
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), deadline.Token);
            return new GuestAgentClient(socket, socketPath, options);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            string why = e is SocketException s ? s.SocketErrorCode switch
            {
                SocketError.AddressNotAvailable or SocketError.ConnectionRefused => "nothing listens there",
                _ => s.Message,
            } : $"no answer within {options.ConnectTimeout.TotalSeconds:0.#} s";
            throw new GuestAgentException(GuestAgentErrorKind.NoAgent, $"cannot reach the guest agent at {socketPath}: {why}");
        }
    }

    /// <summary>
    /// A client on a connection made elsewhere (the freeze watch's copy of the daemon's): it starts
    /// out of step, so its first call syncs, and whatever the other holder left in the stream is skipped.
    /// </summary>
    internal static GuestAgentClient Over(Socket socket, string socketPath, GuestAgentOptions? options = null) =>
        new(socket, socketPath, options ?? new GuestAgentOptions(), ownsConnection: false);

    /// <summary>Brings the stream in step (guest-sync-delimited) even when it seems to be.</summary>
    public Task SyncAsync(CancellationToken cancellationToken = default) => CallAsync(null, null, _options.CallTimeout, _ => 0, cancellationToken);

    /// <summary>guest-ping: the agent answers {}.</summary>
    public Task PingAsync(CancellationToken cancellationToken = default) =>
        CallAsync("guest-ping", null, _options.CallTimeout, r => r.ValueKind == JsonValueKind.Object ? 0 : throw WrongShape("guest-ping", "{}", r), cancellationToken);

    /// <summary>guest-info: the agent's version and its enabled commands.</summary>
    public Task<GuestAgentInfo> InfoAsync(CancellationToken cancellationToken = default) =>
        CallAsync("guest-info", null, _options.CallTimeout, ParseInfo, cancellationToken);

    /// <summary>guest-fsfreeze-freeze: freezes every file system the agent can; the number frozen.</summary>
    public Task<int> FreezeAsync(CancellationToken cancellationToken = default) =>
        CallAsync("guest-fsfreeze-freeze", null, _options.FreezeTimeout, r => Count("guest-fsfreeze-freeze", r), cancellationToken);

    /// <summary>guest-fsfreeze-freeze-list: freezes the file systems mounted at <paramref name="mountpoints"/>; the number frozen.</summary>
    public Task<int> FreezeListAsync(IReadOnlyList<string> mountpoints, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mountpoints);
        return CallAsync("guest-fsfreeze-freeze-list", w =>
        {
            w.WriteStartArray("mountpoints");
            foreach (string point in mountpoints)
            {
                w.WriteStringValue(point);
            }

            w.WriteEndArray();
        }, _options.FreezeTimeout, r => Count("guest-fsfreeze-freeze-list", r), cancellationToken);
    }

    /// <summary>guest-fsfreeze-thaw: the number of file systems thawed (0 when none was frozen).</summary>
    public Task<int> ThawAsync(CancellationToken cancellationToken = default) =>
        CallAsync("guest-fsfreeze-thaw", null, _options.CallTimeout, r => Count("guest-fsfreeze-thaw", r), cancellationToken);

    /// <summary>guest-fsfreeze-status: frozen or thawed.</summary>
    public Task<GuestFreezeStatus> StatusAsync(CancellationToken cancellationToken = default) =>
        CallAsync("guest-fsfreeze-status", null, _options.CallTimeout, r => r.ValueKind == JsonValueKind.String ? r.GetString() switch
        {
            "frozen" => GuestFreezeStatus.Frozen,
            "thawed" => GuestFreezeStatus.Thawed,
            _ => throw WrongShape("guest-fsfreeze-status", "\"frozen\" or \"thawed\"", r),
        } : throw WrongShape("guest-fsfreeze-status", "\"frozen\" or \"thawed\"", r), cancellationToken);

    public async ValueTask DisposeAsync()
    {
        Volatile.Write(ref _closed, true);
        await _stream.DisposeAsync();
        _socket.Dispose();
    }

    /// <summary>
    /// Runs one command (null: only the sync) within <paramref name="timeout"/>, the sync before it
    /// included; <paramref name="parse"/> checks the reply's "return" has the command's shape.
    /// </summary>
    private async Task<T> CallAsync<T>(string? command, Action<Utf8JsonWriter>? arguments, TimeSpan timeout, Func<JsonElement, T> parse,
        CancellationToken cancellationToken)
    {
        string what = command ?? "guest-sync-delimited";
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await _calls.WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new GuestAgentException(GuestAgentErrorKind.Timeout, $"{what}: the guest agent at {SocketPath} is busy with another call for more than {timeout.TotalSeconds:0.#} s");
        }

        try
        {
            if (IsClosed)
            {
                throw new GuestAgentException(GuestAgentErrorKind.Disconnected, $"{what}: the connection to the guest agent at {SocketPath} is closed");
            }

            if (!_inStep || command is null)
            {
                await SyncCoreAsync(deadline.Token);
            }

            if (command is null)
            {
                return parse(default);
            }

            string id = $"strata-{_nextId++}";
            await SendAsync(w =>
            {
                w.WriteStartObject();
                w.WriteString("execute", command);
                if (arguments is not null)
                {
                    w.WriteStartObject("arguments");
                    arguments(w);
                    w.WriteEndObject();
                }

                w.WriteString("id", id);
                w.WriteEndObject();
            }, delimit: false, deadline.Token);
            using var reply = await ReadReplyAsync(what, deadline.Token);
            return parse(Unwrap(what, id, reply.RootElement));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            _inStep = false;
            throw new GuestAgentException(GuestAgentErrorKind.Timeout, $"{what}: the guest agent at {SocketPath} did not answer within {timeout.TotalSeconds:0.#} s");
        }
        catch (GuestAgentException e) when (e.Kind != GuestAgentErrorKind.AgentError)
        {
            // Whatever went wrong, the next call starts with a sync.
            _inStep = false;
            throw;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            Volatile.Write(ref _closed, true);
            throw new GuestAgentException(GuestAgentErrorKind.Disconnected, $"{what}: the connection to the guest agent at {SocketPath} broke: {e.Message}");
        }
        catch (OperationCanceledException)
        {
            _inStep = false;
            throw;
        }
        finally
        {
            _calls.Release();
        }
    }

    /// <summary>0xFF and guest-sync-delimited, then skip to the delimiter and to the reply with this sync's id.</summary>
    private async Task SyncCoreAsync(CancellationToken cancellationToken)
    {
        long id = _nextId++;
        await SendAsync(w =>
        {
            w.WriteStartObject();
            w.WriteString("execute", "guest-sync-delimited");
            w.WriteStartObject("arguments");
            w.WriteNumber("id", id);
            w.WriteEndObject();
            w.WriteEndObject();
        }, delimit: true, cancellationToken);
        if (!await _reader.SkipPastDelimiterAsync(16L * _options.MaxLineBytes, cancellationToken))
        {
            throw Closed("guest-sync-delimited");
        }

        for (int skipped = 0; skipped < MaxStaleLines; skipped++)
        {
            byte[] line = await _reader.ReadLineAsync(cancellationToken) ?? throw Closed("guest-sync-delimited");
            if (IsSyncReply(line, id))
            {
                _inStep = true;
                return;
            }
        }

        throw new GuestAgentException(GuestAgentErrorKind.Protocol,
            $"guest-sync-delimited: the guest agent at {SocketPath} sent {MaxStaleLines} lines after the delimiter and none was the reply to sync {id}");
    }

    /// <summary>True for exactly {"return": id}; a stale sync reply, another command's reply or garbage is skipped.</summary>
    private static bool IsSyncReply(byte[] line, long id)
    {
        try
        {
            using var document = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 16 });
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("return", out var value)
                && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long n) && n == id;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private async Task<JsonDocument> ReadReplyAsync(string what, CancellationToken cancellationToken)
    {
        byte[] line = await _reader.ReadLineAsync(cancellationToken) ?? throw Closed(what);
        try
        {
            return JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException)
        {
            throw new GuestAgentException(GuestAgentErrorKind.Protocol, $"{what}: the guest agent at {SocketPath} sent something that is not JSON ({Excerpt(Encoding.UTF8.GetString(line))})");
        }
    }

    /// <summary>The "return" of a reply to the call <paramref name="id"/>; an "error" reply becomes an <see cref="GuestAgentErrorKind.AgentError"/>.</summary>
    private JsonElement Unwrap(string what, string id, JsonElement reply)
    {
        if (reply.ValueKind != JsonValueKind.Object)
        {
            throw new GuestAgentException(GuestAgentErrorKind.Protocol, $"{what}: the guest agent at {SocketPath} sent a reply that is not a JSON object");
        }

        if (reply.TryGetProperty("id", out var replyId) && !(replyId.ValueKind == JsonValueKind.String && replyId.GetString() == id))
        {
            throw new GuestAgentException(GuestAgentErrorKind.Protocol, $"{what}: the guest agent at {SocketPath} answered with the id {Excerpt(replyId.GetRawText())}, not {id}");
        }

        if (reply.TryGetProperty("error", out var error))
        {
            string desc = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("desc", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "no description";
            string? errorClass = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("class", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            throw new GuestAgentException(GuestAgentErrorKind.AgentError, $"{what}: the guest agent refused: {Excerpt(desc)}{(errorClass is null ? "" : $" ({Excerpt(errorClass)})")}")
            {
                AgentErrorClass = errorClass,
            };
        }

        return reply.TryGetProperty("return", out var value)
            ? value.Clone()
            : throw new GuestAgentException(GuestAgentErrorKind.Protocol, $"{what}: the guest agent at {SocketPath} sent a reply with neither \"return\" nor \"error\"");
    }

    private async Task SendAsync(Action<Utf8JsonWriter> write, bool delimit, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        if (delimit)
        {
            buffer.Write([AgentLineReader.Delimiter]);
        }

        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        buffer.Write("\n"u8);
        await _stream.WriteAsync(buffer.WrittenMemory, cancellationToken);
    }

    private GuestAgentException Closed(string what)
    {
        Volatile.Write(ref _closed, true);
        return new GuestAgentException(GuestAgentErrorKind.Disconnected, $"{what}: the guest agent at {SocketPath} closed the connection");
    }

    private static GuestAgentInfo ParseInfo(JsonElement r)
    {
        if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("version", out var version) || version.ValueKind != JsonValueKind.String
            || !r.TryGetProperty("supported_commands", out var commands) || commands.ValueKind != JsonValueKind.Array)
        {
            throw WrongShape("guest-info", "{\"version\", \"supported_commands\"}", r);
        }

        var enabled = new List<string>();
        foreach (var command in commands.EnumerateArray())
        {
            if (command.ValueKind == JsonValueKind.Object && command.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String
                && !(command.TryGetProperty("enabled", out var on) && on.ValueKind == JsonValueKind.False))
            {
                enabled.Add(name.GetString()!);
            }
        }

        return new GuestAgentInfo(version.GetString()!, enabled);
    }

    /// <summary>A count of file systems; a count of another shape (or absurd size) is a reply to something else.</summary>
    private static int Count(string what, JsonElement r) =>
        r.ValueKind == JsonValueKind.Number && r.TryGetInt32(out int n) && n is >= 0 and <= 100_000 ? n : throw WrongShape(what, "a count of file systems", r);

    private static GuestAgentException WrongShape(string what, string expected, JsonElement r) =>
        new(GuestAgentErrorKind.Protocol, $"{what}: the guest agent's reply is not one to {what} (expected {expected}, got {Excerpt(r.ValueKind == JsonValueKind.Undefined ? "nothing" : r.GetRawText())})");

    /// <summary>A peer's text made fit for a one-line message: control characters replaced, at most 80 characters.</summary>
    internal static string Excerpt(string text)
    {
        var clean = new StringBuilder(Math.Min(text.Length, 81));
        foreach (char c in text)
        {
            if (clean.Length == 80)
            {
                clean.Append('…');
                break;
            }

            clean.Append(char.IsControl(c) ? '?' : c);
        }

        return clean.ToString();
    }
}
