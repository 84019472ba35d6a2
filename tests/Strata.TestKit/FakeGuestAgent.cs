using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Strata.TestKit;

/// <summary>
/// A scripted guest agent: a unix-socket server that speaks qemu-ga's protocol (qga/qapi-schema.json)
/// the way qemu-ga does it (0xFF resets its parser and gets a parse error, guest-sync-delimited's
/// reply starts with 0xFF, every "id" is echoed), with one frozen/thawed state shared by its
/// connections, like one guest. <see cref="Mode"/> makes it hang, lie, send garbage, drop the
/// connection or send stale replies. It records every command it receives and every thaw. With
/// <see cref="OneClientAtATime"/> it serves connections as QEMU's socket chardev does: one at a time,
/// a second client waiting (connected, unanswered) until the first has closed.
/// </summary>
public sealed class FakeGuestAgent : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    // Protects _commands, _connections, _frozen, _thaws.
    private readonly Lock _lock = new();
    private readonly List<string> _commands = [];
    private readonly List<Socket> _connections = [];
    private bool _frozen;
    private int _thaws;
    private int _accepted;

    public FakeGuestAgent(string socketPath)
    {
        SocketPath = socketPath;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        _listener.Listen(8);
        _accepting = AcceptAsync(_stop.Token);
    }

    public string SocketPath { get; }

    public FakeAgentMode Mode { get; set; }

    /// <summary>How many file systems a freeze reports.</summary>
    public int FileSystems { get; set; } = 2;

    /// <summary>The guest's mount points, for guest-fsfreeze-freeze-list: it freezes those of the list that are here. Null: every one asked for.</summary>
    public IReadOnlyCollection<string>? Mounts { get; set; }

    /// <summary>Serve one connection at a time, as QEMU's chardev does (set before the first client connects).</summary>
    public bool OneClientAtATime { get; init; }

    public bool Frozen
    {
        get
        {
            lock (_lock)
            {
                return _frozen;
            }
        }
    }

    /// <summary>Thaw commands that found the guest frozen.</summary>
    public int Thaws
    {
        get
        {
            lock (_lock)
            {
                return _thaws;
            }
        }
    }

    public int ConnectionsAccepted => Volatile.Read(ref _accepted);

    /// <summary>Every command received, in order, on any connection.</summary>
    public IReadOnlyList<string> Commands
    {
        get
        {
            lock (_lock)
            {
                return [.. _commands];
            }
        }
    }

    /// <summary>Waits until <paramref name="done"/> holds; fails with <paramref name="what"/> and the commands seen when it never does.</summary>
    public async Task WaitUntilAsync(Func<FakeGuestAgent, bool> done, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(done);
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        while (!done(this))
        {
            if (clock.Elapsed > limit)
            {
                throw new TimeoutException($"the fake agent never saw {what} within {limit.TotalSeconds} s; commands: {string.Join(", ", Commands)}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Closes every open connection (the agent restarts, the VM reboots); the socket keeps listening.</summary>
    public void DropConnections()
    {
        lock (_lock)
        {
            foreach (var connection in _connections)
            {
                Close(connection);
            }

            _connections.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        DropConnections();
        try
        {
            await _accepting;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        if (File.Exists(SocketPath))
        {
            File.Delete(SocketPath);
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var connection = await _listener.AcceptAsync(stop);
            Interlocked.Increment(ref _accepted);
            lock (_lock)
            {
                _connections.Add(connection);
            }

            if (OneClientAtATime)
            {
                await ServeAsync(connection, stop);
            }
            else
            {
                _ = Task.Run(() => ServeAsync(connection, stop), CancellationToken.None);
            }
        }
    }

    private async Task ServeAsync(Socket connection, CancellationToken stop)
    {
        var pending = new List<byte>();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                int n = await connection.ReceiveAsync(buffer, SocketFlags.None, stop);
                if (n == 0)
                {
                    return;
                }

                for (int i = 0; i < n; i++)
                {
                    byte b = buffer[i];
                    if (b == 0xFF)
                    {
                        // qemu-ga's parser sees a stray byte, reports it and starts afresh.
                        pending.Clear();
                        if (Mode != FakeAgentMode.Hang)
                        {
                            await SendAsync(connection, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n", stop);
                        }
                    }
                    else if (b == '\n')
                    {
                        byte[] line = [.. pending];
                        pending.Clear();
                        if (!await HandleAsync(connection, line, stop))
                        {
                            return;
                        }
                    }
                    else if (pending.Count < 1 << 20)
                    {
                        pending.Add(b);
                    }
                }
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The client or the test went away.
        }
        finally
        {
            lock (_lock)
            {
                _connections.Remove(connection);
            }

            Close(connection);
        }
    }

    /// <summary>Answers one request; false to close the connection.</summary>
    private async Task<bool> HandleAsync(Socket connection, byte[] line, CancellationToken stop)
    {
        string command;
        JsonElement arguments;
        string? id;
        try
        {
            using var request = JsonDocument.Parse(line);
            command = request.RootElement.GetProperty("execute").GetString()!;
            arguments = request.RootElement.TryGetProperty("arguments", out var a) ? a.Clone() : default;
            id = request.RootElement.TryGetProperty("id", out var i) ? i.GetRawText() : null;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            await SendAsync(connection, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n", stop);
            return true;
        }

        var mode = Mode;
        lock (_lock)
        {
            _commands.Add(command);
        }

        if (mode == FakeAgentMode.Hang)
        {
            return true;
        }

        if (command == "guest-sync-delimited")
        {
            long sync = arguments.GetProperty("id").GetInt64();
            string reply = mode switch
            {
                FakeAgentMode.StaleReplies => $"{{\"return\": 2}}\n\xFF{{\"return\": {sync - 1}}}\n{{\"return\": {{}}}}\n{{\"return\": 7}}\n\xFF{{\"return\": {sync}}}\n",
                _ => $"\xFF{{\"return\": {sync}}}\n",
            };
            await SendAsync(connection, reply, stop);
            return true;
        }

        string? result;
        switch (command)
        {
            case "guest-sync":
                result = arguments.GetProperty("id").GetRawText();
                break;
            case "guest-ping":
                result = mode == FakeAgentMode.ReplyToOther ? "3" : "{}";
                break;
            case "guest-info":
                result = mode == FakeAgentMode.LongLine
                    ? $"{{\"version\": \"{new string('x', 2 << 20)}\", \"supported_commands\": []}}"
                    : "{\"version\": \"fake-1.0\", \"supported_commands\": [{\"enabled\": true, \"name\": \"guest-ping\", \"success-response\": true}]}";
                break;
            case "guest-fsfreeze-freeze" or "guest-fsfreeze-freeze-list":
                if (mode == FakeAgentMode.DropOnFreeze)
                {
                    return false;
                }

                if (mode == FakeAgentMode.RefuseFreeze)
                {
                    await Reply(connection, id, null, $"Command {command} has been disabled", stop);
                    return true;
                }

                lock (_lock)
                {
                    _frozen = mode != FakeAgentMode.LieAboutFreeze;
                }

                if (mode == FakeAgentMode.FailFreezeLeavingFrozen)
                {
                    await Reply(connection, id, null, "failed to freeze /data: Device or resource busy", stop);
                    return true;
                }

                if (mode == FakeAgentMode.HangOnFreeze)
                {
                    return true;
                }

                int frozen = command == "guest-fsfreeze-freeze-list"
                    ? arguments.GetProperty("mountpoints").EnumerateArray().Count(m => Mounts is null || Mounts.Contains(m.GetString()!))
                    : FileSystems;
                result = mode == FakeAgentMode.ReplyToOther ? "{}" : frozen.ToString(System.Globalization.CultureInfo.InvariantCulture);
                break;
            case "guest-fsfreeze-thaw":
                int thawed;
                lock (_lock)
                {
                    thawed = _frozen ? FileSystems : 0;
                    if (_frozen)
                    {
                        _thaws++;
                    }

                    _frozen = false;
                }

                result = thawed.ToString(System.Globalization.CultureInfo.InvariantCulture);
                break;
            case "guest-fsfreeze-status":
                result = Frozen ? "\"frozen\"" : "\"thawed\"";
                break;
            default:
                await Reply(connection, id, null, $"The command {command} has not been found", stop);
                return true;
        }

        if (mode == FakeAgentMode.Garbage)
        {
            await SendAsync(connection, "this is not json at all\n", stop);
            return true;
        }

        if (mode == FakeAgentMode.WrongId)
        {
            id = "\"someone-else\"";
        }

        await Reply(connection, id, result, null, stop);
        return true;
    }

    private static Task Reply(Socket connection, string? id, string? result, string? error, CancellationToken stop)
    {
        string body = result is not null ? $"\"return\": {result}" : $"\"error\": {{\"class\": \"CommandNotFound\", \"desc\": \"{error}\"}}";
        return SendAsync(connection, id is null ? $"{{{body}}}\n" : $"{{{body}, \"id\": {id}}}\n", stop);
    }

    /// <summary>Sends <paramref name="text"/>, where the character U+00FF stands for the byte 0xFF.</summary>
    private static async Task SendAsync(Socket connection, string text, CancellationToken stop)
    {
        var bytes = new List<byte>(text.Length);
        string[] parts = text.Split('\xFF');
        for (int i = 0; i < parts.Length; i++)
        {
            if (i > 0)
            {
                bytes.Add(0xFF);
            }

            bytes.AddRange(Encoding.UTF8.GetBytes(parts[i]));
        }

        await connection.SendAsync(bytes.ToArray(), SocketFlags.None, stop);
    }

    private static void Close(Socket connection)
    {
        try
        {
            connection.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Gone already.
        }

        connection.Dispose();
    }
}
