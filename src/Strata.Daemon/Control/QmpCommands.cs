using System.Text.Json;
using Strata.Block;

namespace Strata.Daemon.Control;

/// <summary>
/// The commands of the control socket, spelled as in QEMU's qapi schema: <c>query-block</c>,
/// <c>cont</c>, <c>quit</c>; snapshot, merge and job commands (QmpCommands.Live.cs); dirty bitmap
/// commands (QmpCommands.Bitmaps.cs); NBD server and export commands (QmpCommands.Exports.cs).
/// </summary>
public sealed partial class QmpCommands
{
    private readonly StorageDaemon _daemon;

    private static readonly QmpParameter[] None = [];
    private static readonly QmpParameter[] JobId = [new("id", QmpType.String)];
    private static readonly QmpParameter[] JobDevice = [new("device", QmpType.String)];

    /// <summary>blockdev-snapshot-sync's arguments, also the data of its transaction action.</summary>
    private static readonly QmpParameter[] SnapshotParameters =
    [
        new("device", QmpType.String), new("node-name", QmpType.String), new("snapshot-file", QmpType.String),
        new("format", QmpType.String), new("mode", QmpType.String), new("x-strata-freeze", QmpType.Boolean),
    ];

    private static readonly QmpParameter[] BitmapName = [new("node", QmpType.String), new("name", QmpType.String)];

    private static readonly QmpParameter[] BitmapAdd =
    [
        new("node", QmpType.String), new("name", QmpType.String), new("granularity", QmpType.Integer), new("persistent", QmpType.Boolean),
        new("disabled", QmpType.Boolean), new("file", QmpType.String),
    ];

    private static readonly QmpParameter[] BitmapMerge = [new("node", QmpType.String), new("target", QmpType.String), new("bitmaps", QmpType.Array)];

    /// <summary>
    /// Every command this socket answers with the arguments its handler reads, in query-commands
    /// order. Arguments are checked against it before any handler runs (as QEMU's generated
    /// visitors do: qmp-spec.rst, "Compatibility Considerations"), so a misspelt or unsupported
    /// argument is an error, never silently ignored. A handler that reads a new argument needs it here.
    /// </summary>
    private static readonly (string Name, QmpParameter[] Parameters)[] Table =
    [
        ("qmp_capabilities", [new("enable", QmpType.Array)]),
        ("query-commands", None), ("query-block", None), ("query-status", None), ("query-jobs", None), ("query-block-jobs", None),
        ("stop", None), ("cont", None), ("quit", None),
        ("blockdev-snapshot-sync", SnapshotParameters),
        ("transaction", [new("actions", QmpType.Array), new("properties", QmpType.Object)]),
        ("block-commit",
        [
            new("device", QmpType.String), new("job-id", QmpType.String), new("top", QmpType.String), new("base", QmpType.String),
            new("speed", QmpType.Integer), new("on-error", QmpType.String), new("auto-dismiss", QmpType.Boolean),
            new("auto-complete", QmpType.Boolean),
        ]),
        ("job-pause", JobId), ("job-resume", JobId), ("job-cancel", JobId), ("job-complete", JobId), ("job-dismiss", JobId),
        ("block-job-pause", JobDevice), ("block-job-resume", JobDevice), ("block-job-cancel", JobDevice), ("block-job-complete", JobDevice),
        ("block-dirty-bitmap-add", BitmapAdd), ("block-dirty-bitmap-remove", BitmapName), ("block-dirty-bitmap-clear", BitmapName),
        ("block-dirty-bitmap-enable", BitmapName), ("block-dirty-bitmap-disable", BitmapName), ("block-dirty-bitmap-merge", BitmapMerge),
        ("x-debug-block-dirty-bitmap-sha256", BitmapName),
        ("x-strata-set-dirty", [new("device", QmpType.String), new("file", QmpType.String)]),
        ("drive-backup", DriveBackupParameters), ("blockdev-backup", BlockdevBackupParameters),
        ("blockdev-add", BlockdevAddParameters), ("blockdev-del", [new("node-name", QmpType.String)]),
        ("nbd-server-start", NbdServerStartParameters), ("nbd-server-stop", None),
        ("block-export-add", BlockExportAddParameters), ("block-export-del", BlockExportDelParameters), ("query-block-exports", None),
        ("nbd-server-add", NbdServerAddParameters), ("nbd-server-remove", NbdServerRemoveParameters),
        ("x-strata-guest-add", GuestAddParameters), ("x-strata-guest-remove", [new("id", QmpType.String)]), ("query-guests", None),
        ("x-strata-guest-ping", GuestName), ("x-strata-guest-begin-snapshot", GuestBegin), ("x-strata-guest-end-snapshot", GuestName),
    ];

    private static readonly Dictionary<string, QmpParameter[]> Signatures = Table.ToDictionary(c => c.Name, c => c.Parameters);

    /// <summary>The transaction actions with a table entry for their "data" (others are refused by the handler).</summary>
    private static readonly Dictionary<string, QmpParameter[]> TransactionActions = new()
    {
        ["blockdev-snapshot-sync"] = SnapshotParameters,
        ["block-dirty-bitmap-add"] = BitmapAdd,
        ["block-dirty-bitmap-remove"] = BitmapName,
        ["block-dirty-bitmap-clear"] = BitmapName,
        ["block-dirty-bitmap-enable"] = BitmapName,
        ["block-dirty-bitmap-disable"] = BitmapName,
        ["block-dirty-bitmap-merge"] = BitmapMerge,
    };

    private static readonly QmpParameter[] TransactionActionMembers = [new("type", QmpType.String), new("data", QmpType.Object)];

    /// <summary>qapi/transaction.json, TransactionProperties.</summary>
    private static readonly QmpParameter[] TransactionProperties = [new("completion-mode", QmpType.String)];

    public QmpCommands(StorageDaemon daemon) => _daemon = daemon;

    /// <summary>The commands this socket answers (query-commands).</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Table.Select(c => c.Name)];

    /// <summary>
    /// Throws a <see cref="QmpException"/> with QEMU's words when <paramref name="arguments"/> (an
    /// object, or undefined for none) holds a name <paramref name="command"/> does not take or a
    /// value of the wrong type; a transaction's actions and their data are checked the same way.
    /// Unknown commands pass: the caller answers CommandNotFound.
    /// </summary>
    public static void CheckArguments(string command, JsonElement arguments)
    {
        if (!Signatures.TryGetValue(command, out var parameters) || arguments.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        Check(arguments, parameters, "");
        if (command == "transaction" && arguments.TryGetProperty("properties", out var properties))
        {
            Check(properties, TransactionProperties, "properties.");
        }

        if (command == "transaction" && arguments.TryGetProperty("actions", out var actions))
        {
            int index = 0;
            foreach (var action in actions.EnumerateArray())
            {
                CheckAction(action, $"actions[{index++}]");
            }
        }
    }

    public async Task<QmpResult> ExecuteAsync(string command, JsonElement arguments, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var args = new QmpArguments(arguments);
        try
        {
            CheckArguments(command, arguments);
            return command switch
            {
                "query-commands" => QueryCommands(),
                "query-block" => QueryBlock(),
                "query-status" => QueryStatus(),
                "query-jobs" => QueryJobs(),
                "query-block-jobs" => QueryBlockJobs(),
                "stop" => await StopAsync(cancellationToken),
                "cont" => Cont(),
                "quit" => QmpResult.Empty,
                "blockdev-snapshot-sync" => await SnapshotAsync([args], cancellationToken),
                "transaction" => await TransactionAsync(args, cancellationToken),
                "block-commit" => await CommitAsync(args, cancellationToken),
                "job-pause" or "block-job-pause" => JobAction(args, command, j => j.Pause()),
                "job-resume" or "block-job-resume" => JobAction(args, command, j => j.Resume()),
                "job-cancel" or "block-job-cancel" => JobAction(args, command, j => j.Cancel()),
                "job-complete" or "block-job-complete" => JobAction(args, command, j => j.Complete()),
                "job-dismiss" => Dismiss(args),
                "block-dirty-bitmap-add" or "block-dirty-bitmap-remove" or "block-dirty-bitmap-clear" or "block-dirty-bitmap-enable"
                    or "block-dirty-bitmap-disable" or "block-dirty-bitmap-merge" => await ChangeBitmapsAsync([ToBitmapAction(command, args)], cancellationToken),
                "x-debug-block-dirty-bitmap-sha256" => BitmapSha256(args),
                "x-strata-set-dirty" => await SetDirtyAsync(args, cancellationToken),
                "drive-backup" or "blockdev-backup" => await BackupAsync(command, args, cancellationToken),
                "blockdev-add" => await BlockdevAddAsync(args, cancellationToken),
                "blockdev-del" => await BlockdevDelAsync(args),
                "nbd-server-start" => await NbdServerStartAsync(args, cancellationToken),
                "nbd-server-stop" => await NbdServerStopAsync(cancellationToken),
                "block-export-add" => await BlockExportAddAsync(args, cancellationToken),
                "block-export-del" => await RemoveExportAsync(args.String("id"), args.OptionalString("mode"), needsServer: false, cancellationToken),
                "query-block-exports" => QueryBlockExports(),
                "nbd-server-add" => await NbdServerAddAsync(args, cancellationToken),
                "nbd-server-remove" => await RemoveExportAsync(args.String("name"), args.OptionalString("mode"), needsServer: true, cancellationToken),
                "x-strata-guest-add" => AddGuest(args),
                "x-strata-guest-remove" => await RemoveGuestAsync(args),
                "query-guests" => QueryGuests(),
                "x-strata-guest-ping" => await GuestPingAsync(args, cancellationToken),
                "x-strata-guest-begin-snapshot" => await GuestBeginAsync(args, cancellationToken),
                "x-strata-guest-end-snapshot" => await GuestEndAsync(args, cancellationToken),
                _ => QmpResult.Error($"The command {command} has not been found", "CommandNotFound"),
            };
        }
        catch (QmpException e)
        {
            return QmpResult.Error(e.Message, e.ErrorClass);
        }
        catch (BlockException e)
        {
            return QmpResult.Error(e.Message);
        }
        catch (Strata.Guest.GuestAgentException e)
        {
            return QmpResult.Error(e.Message);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            // A command that fails for any foreseen reason answers with an error; the connection and
            // the daemon carry on (DESIGN.md rule 5).
            return QmpResult.Error(e.Message);
        }
    }

    private static QmpResult QueryCommands() => new(w =>
    {
        w.WriteStartArray();
        foreach (var name in Names)
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    });

    /// <summary>
    /// Members are checked in the table's order for their types, then for names the table lacks,
    /// as QEMU's visitors do; <paramref name="path"/> prefixes the names in the message.
    /// </summary>
    private static void Check(JsonElement arguments, QmpParameter[] parameters, string path)
    {
        foreach (var parameter in parameters)
        {
            if (arguments.TryGetProperty(parameter.Name, out var value) && !parameter.Accepts(value))
            {
                throw new QmpException($"Invalid parameter type for '{path}{parameter.Name}', expected: {parameter.TypeName}");
            }
        }

        foreach (var member in arguments.EnumerateObject())
        {
            if (Array.FindIndex(parameters, p => p.Name == member.Name) < 0)
            {
                throw new QmpException($"Parameter '{path}{member.Name}' is unexpected");
            }
        }
    }

    /// <summary>One transaction action (qapi/transaction.json, TransactionAction): {"type", "data"}, data as the command's arguments.</summary>
    private static void CheckAction(JsonElement action, string path)
    {
        if (action.ValueKind != JsonValueKind.Object)
        {
            throw new QmpException($"Invalid parameter type for '{path}', expected: object");
        }

        if (!action.TryGetProperty("type", out var type))
        {
            throw new QmpException($"Parameter '{path}.type' is missing");
        }

        Check(action, TransactionActionMembers, $"{path}.");
        if (!TransactionActions.TryGetValue(type.GetString()!, out var parameters))
        {
            return;
        }

        if (!action.TryGetProperty("data", out var data))
        {
            throw new QmpException($"Parameter '{path}.data' is missing");
        }

        Check(data, parameters, $"{path}.data.");
    }

    /// <summary>stop: holds guest I/O; the STOP event tells every client, as QEMU's does. Already held (stop, -S, an I/O error): nothing changes.</summary>
    private async Task<QmpResult> StopAsync(CancellationToken cancellationToken)
    {
        if (!_daemon.IsPaused && await _daemon.PauseAsync(cancellationToken))
        {
            _daemon.Emit(new QmpEvent("STOP", EmptyData));
        }

        return QmpResult.Empty;
    }

    /// <summary>cont: lets held guest I/O run, and runs again the requests an I/O error held (every drive's io-status back to ok); the RESUME event tells every client.</summary>
    private QmpResult Cont()
    {
        if (_daemon.Resume())
        {
            _daemon.Emit(new QmpEvent("RESUME", EmptyData));
        }

        return QmpResult.Empty;
    }

    private static void EmptyData(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteEndObject();
    }

    private QmpResult QueryStatus()
    {
        // qapi/run-state.json StatusInfo: "io-error" while a failure under an error policy of stop holds the guest.
        string status = _daemon.RunStatus;
        return new QmpResult(w =>
        {
            w.WriteStartObject();
            w.WriteBoolean("running", status == "running");
            w.WriteString("status", status);
            w.WriteEndObject();
        });
    }

    /// <summary>query-block (qapi/block-core.json, BlockInfo): one entry per drive, its chain as "image".</summary>
    private QmpResult QueryBlock()
    {
        var drives = _daemon.Drives.ToList();
        return new QmpResult(w =>
        {
            w.WriteStartArray();
            foreach (var drive in drives)
            {
                var root = drive.Top;
                int depth = root.Layers().Count() - 1;

                w.WriteStartObject();
                w.WriteString("device", drive.Id);
                w.WriteBoolean("locked", false);
                w.WriteBoolean("removable", false);
                w.WriteString("type", "unknown");
                w.WriteString("io-status", IoStatusName(drive.Gate.IoStatus));
                w.WriteStartObject("inserted");
                w.WriteString("file", root.FileName ?? "");
                w.WriteString("node-name", drive.Id);
                w.WriteString("drv", root.DriverName);
                w.WriteBoolean("ro", drive.ReadOnly);
                w.WriteBoolean("encrypted", false);
                w.WriteNumber("backing_file_depth", depth);
                if (root.Backing?.FileName is { } backing)
                {
                    w.WriteString("backing_file", backing);
                }

                w.WriteString("cache-mode", drive.Direct ? "none" : "writeback");
                WriteDirtyBitmaps(w, drive);
                w.WritePropertyName("image");
                WriteImage(w, root);
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    /// <summary>qapi/block-core.json BlockDeviceIoStatus.</summary>
    private static string IoStatusName(IoStatus status) => status switch
    {
        IoStatus.NoSpace => "nospace",
        IoStatus.Failed => "failed",
        _ => "ok",
    };

    private static void WriteImage(Utf8JsonWriter w, IBlockNode node)
    {
        w.WriteStartObject();
        w.WriteString("filename", node.FileName ?? "");
        w.WriteString("format", node.DriverName);
        w.WriteNumber("virtual-size", node.Size);
        if (node.Backing is { } backing)
        {
            w.WriteString("backing-filename", backing.FileName ?? "");
            w.WritePropertyName("backing-image");
            WriteImage(w, backing);
        }

        w.WriteEndObject();
    }
}
