using System.Buffers;
using System.Diagnostics;
using System.Text.Json;

namespace Strata.Agent;

/// <summary>
/// The protocol side of strata-agent: one command in, one reply out, in the qemu-ga wire format
/// (qga/qapi-schema.json): <c>{"execute": NAME, "arguments": {…}, "id": …}</c> answered by
/// <c>{"return": …}</c> or <c>{"error": {"class": …, "desc": …}}</c>, the id echoed.
///
/// Invariant: while file systems are frozen, a command from the host must come at least every
/// <c>lease</c>; past that, <see cref="ExpireLease"/> thaws them (and runs the thaw hooks) by itself.
/// A frozen guest blocks every writer in it, and a host that died, hung or lost its socket after a
/// freeze would otherwise leave it so forever: the failure qemu-ga leaves to the management layer.
/// Any command renews the lease, so a host that needs a long freeze keeps it with guest-ping.
/// </summary>
internal sealed class GuestAgent(IFreezer freezer, HookRunner hooks, TimeSpan lease, TextWriter log, Func<long>? clock = null)
{
    public const string Version = "strata-agent 0.1.0";

    private static readonly string[] Commands =
    [
        "guest-sync-delimited", "guest-sync", "guest-ping", "guest-info", "guest-fsfreeze-status",
        "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-shutdown",
    ];

    private readonly Func<long> _clock = clock ?? Stopwatch.GetTimestamp;

    // Protects _frozen and _lastCommand: the port's reader and the lease timer both change them.
    private readonly Lock _lock = new();
    private List<string>? _frozen;
    private long _lastCommand;

    public bool IsFrozen
    {
        get
        {
            lock (_lock)
            {
                return _frozen is not null;
            }
        }
    }

    /// <summary>Runs one command; returns the reply's bytes, or null when the command has none (guest-shutdown's success).</summary>
    public byte[]? Handle(ReadOnlySpan<byte> message)
    {
        lock (_lock)
        {
            _lastCommand = _clock();
            JsonElement? id = null;
            string command = "";
            try
            {
                using var document = ParseCommand(message, out command, out var arguments, out id);
                bool delimited = command == "guest-sync-delimited";
                var reply = new ArrayBufferWriter<byte>();
                if (delimited)
                {
                    // The 0xFF before the reply lets the host skip anything stale still in the pipe.
                    reply.Write([(byte)0xFF]);
                }

                using (var json = new Utf8JsonWriter(reply))
                {
                    json.WriteStartObject();
                    json.WritePropertyName("return");
                    if (!Execute(command, arguments, json))
                    {
                        return null;
                    }

                    WriteId(json, id);
                    json.WriteEndObject();
                }

                reply.Write("\n"u8);
                return reply.WrittenSpan.ToArray();
            }
            catch (AgentError e)
            {
                return ErrorReply(e.ErrorClass, e.Message, id);
            }
        }
    }

    /// <summary>Thaws by itself when frozen and no command came for the lease; returns how many file systems it thawed.</summary>
    public int ExpireLease()
    {
        lock (_lock)
        {
            if (_frozen is null || Stopwatch.GetElapsedTime(_lastCommand, _clock()) < lease)
            {
                return 0;
            }

            int thawed = ThawAll();
            log.WriteLine($"strata-agent: no command from the host for {lease.TotalSeconds:0.#} s while frozen: thawed {thawed} file systems by itself");
            return thawed;
        }
    }

    /// <summary>The agent's last act on the way out: nothing stays frozen.</summary>
    public void ThawOnExit()
    {
        lock (_lock)
        {
            if (_frozen is not null)
            {
                log.WriteLine($"strata-agent: exiting while frozen: thawed {ThawAll()} file systems");
            }
        }
    }

    internal static byte[] ErrorReply(string errorClass, string description, JsonElement? id = null)
    {
        var reply = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(reply))
        {
            json.WriteStartObject();
            json.WriteStartObject("error");
            json.WriteString("class", errorClass);
            json.WriteString("desc", description);
            json.WriteEndObject();
            WriteId(json, id);
            json.WriteEndObject();
        }

        reply.Write("\n"u8);
        return reply.WrittenSpan.ToArray();
    }

    private static JsonDocument ParseCommand(ReadOnlySpan<byte> message, out string command, out JsonElement arguments, out JsonElement? id)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(message.ToArray());
        }
        catch (JsonException e)
        {
            throw AgentError.Generic($"the message is not JSON: {e.Message}");
        }

        var root = document.RootElement;
        id = root.TryGetProperty("id", out var given) ? given.Clone() : null;
        if (!root.TryGetProperty("execute", out var execute) || execute.ValueKind != JsonValueKind.String)
        {
            document.Dispose();
            throw AgentError.Generic("the message has no 'execute' string");
        }

        command = execute.GetString()!;
        arguments = root.TryGetProperty("arguments", out var args) ? args : default;
        if (arguments.ValueKind is not (JsonValueKind.Object or JsonValueKind.Undefined))
        {
            document.Dispose();
            throw AgentError.Generic("'arguments' must be an object");
        }

        return document;
    }

    /// <summary>Writes the value of "return"; false when the command sends no reply.</summary>
    private bool Execute(string command, JsonElement arguments, Utf8JsonWriter json)
    {
        switch (command)
        {
            case "guest-sync-delimited" or "guest-sync":
                Argument(arguments, "id", JsonValueKind.Number).WriteTo(json);
                return true;
            case "guest-ping":
                json.WriteStartObject();
                json.WriteEndObject();
                return true;
            case "guest-info":
                WriteInfo(json);
                return true;
            case "guest-fsfreeze-status":
                json.WriteStringValue(_frozen is null ? "thawed" : "frozen");
                return true;
            case "guest-fsfreeze-freeze":
                json.WriteNumberValue(Freeze(freezer.FreezableMounts()));
                return true;
            case "guest-fsfreeze-freeze-list":
                json.WriteNumberValue(Freeze(MountList(arguments)));
                return true;
            case "guest-fsfreeze-thaw":
                json.WriteNumberValue(_frozen is null ? 0 : ThawAll());
                return true;
            case "guest-shutdown":
                Shutdown();
                return false;
            default:
                throw new AgentError("CommandNotFound", $"The command {command} has not been found");
        }
    }

    private static void WriteInfo(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteString("version", Version);
        json.WriteStartArray("supported_commands");
        foreach (string name in Commands)
        {
            json.WriteStartObject();
            json.WriteString("name", name);
            json.WriteBoolean("enabled", true);
            json.WriteBoolean("success-response", name != "guest-shutdown");
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>Freeze hooks, then every mount from the last to the first; any failure thaws what froze and runs the thaw hooks.</summary>
    private int Freeze(IReadOnlyList<string> mounts)
    {
        if (_frozen is not null)
        {
            throw AgentError.Generic("the file systems are already frozen: thaw first (freezes do not nest)");
        }

        string? hookFailure = hooks.Run("freeze");
        if (hookFailure is not null)
        {
            hooks.Run("thaw");
            throw AgentError.Generic($"freeze refused: {hookFailure}");
        }

        _frozen = [];
        foreach (string mount in mounts.Reverse())
        {
            try
            {
                freezer.Freeze(mount);
                _frozen.Add(mount);
            }
            catch (AgentError)
            {
                ThawAll();
                throw;
            }
        }

        log.WriteLine($"strata-agent: froze {_frozen.Count} file systems");
        return _frozen.Count;
    }

    /// <summary>Thaws in mount order (the reverse of freezing) and runs the thaw hooks; a mount that fails to thaw is reported, the rest still thaw.</summary>
    private int ThawAll()
    {
        var frozen = _frozen ?? [];
        _frozen = null;
        int thawed = 0;
        foreach (string mount in Enumerable.Reverse(frozen))
        {
            try
            {
                freezer.Thaw(mount);
                thawed++;
            }
            catch (AgentError e)
            {
                log.WriteLine($"strata-agent: {e.Message}");
            }
        }

        hooks.Run("thaw");
        log.WriteLine($"strata-agent: thawed {thawed} file systems");
        return thawed;
    }

    private static List<string> MountList(JsonElement arguments)
    {
        if (arguments.ValueKind != JsonValueKind.Object || !arguments.TryGetProperty("mountpoints", out var list))
        {
            throw AgentError.Generic("guest-fsfreeze-freeze-list: 'mountpoints' is missing (use guest-fsfreeze-freeze for all)");
        }

        if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(m => m.ValueKind != JsonValueKind.String))
        {
            throw AgentError.Generic("guest-fsfreeze-freeze-list: 'mountpoints' must be an array of strings");
        }

        return [.. list.EnumerateArray().Select(m => m.GetString()!)];
    }

    /// <summary>What qemu-ga does (qga/commands-posix.c): run shutdown -h -P +0; success has no reply.</summary>
    private static void Shutdown()
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("/sbin/shutdown", ["-h", "-P", "+0", "hypervisor initiated shutdown"]) { UseShellExecute = false })
                ?? throw AgentError.Generic("guest-shutdown: /sbin/shutdown did not start");
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw AgentError.Generic($"guest-shutdown: /sbin/shutdown exited {process.ExitCode}");
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw AgentError.Generic($"guest-shutdown: cannot run /sbin/shutdown: {e.Message}");
        }
    }

    private static JsonElement Argument(JsonElement arguments, string name, JsonValueKind kind) =>
        arguments.ValueKind == JsonValueKind.Object && arguments.TryGetProperty(name, out var value) && value.ValueKind == kind
            ? value
            : throw AgentError.Generic($"argument '{name}' is missing or not a {kind.ToString().ToLowerInvariant()}");

    private static void WriteId(Utf8JsonWriter json, JsonElement? id)
    {
        if (id is { } value)
        {
            json.WritePropertyName("id");
            value.WriteTo(json);
        }
    }
}
