using System.Text;
using System.Text.Json;
using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Daemon.Exports;
using Strata.Nbd.Protocol;
using Strata.Nbd.Server;
using Strata.Nbd.Server.MetaContexts;
using Strata.Nbd.Transport;

namespace Strata.Daemon.Control;

/// <summary>
/// NBD server and export commands (qapi/block-export.json): nbd-server-start, nbd-server-stop,
/// block-export-add, block-export-del, query-block-exports, and the older nbd-server-add and
/// nbd-server-remove mapped to the same. A pull backup exports a frozen layer of a drive with the
/// bitmap that says what changed in it (docs/backup-pull.md).
/// </summary>
public sealed partial class QmpCommands
{
    // Properties, not fields: the dispatch table (another part of this class) reads them, and static
    // fields of different parts are initialized in no defined order.
    private static QmpParameter[] NbdServerStartParameters =>
        [new("addr", QmpType.Object), new("tls-creds", QmpType.String), new("tls-authz", QmpType.String), new("max-connections", QmpType.Integer)];

    private static QmpParameter[] BlockExportAddParameters =>
    [
        new("type", QmpType.String), new("id", QmpType.String), new("node-name", QmpType.String), new("name", QmpType.String),
        new("description", QmpType.String), new("writable", QmpType.Boolean), new("bitmaps", QmpType.Array),
    ];

    private static QmpParameter[] NbdServerAddParameters =>
    [
        new("device", QmpType.String), new("name", QmpType.String), new("description", QmpType.String), new("writable", QmpType.Boolean),
        new("bitmap", QmpType.String),
    ];

    private static QmpParameter[] BlockExportDelParameters => [new("id", QmpType.String), new("mode", QmpType.String)];

    private static QmpParameter[] NbdServerRemoveParameters => [new("name", QmpType.String), new("mode", QmpType.String)];

    /// <summary>nbd-server-start {addr, max-connections?}: addr as SocketAddressLegacy ({type, data}) or flat ({type, path | host, port}).</summary>
    private async Task<QmpResult> NbdServerStartAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        if (args.OptionalString("tls-creds") is not null || args.OptionalString("tls-authz") is not null)
        {
            throw new QmpException("TLS is not supported by this NBD server");
        }

        long? most = args.OptionalInt("max-connections", long.MinValue) is var m and not long.MinValue ? m : null;
        if (most is < 0 or > int.MaxValue)
        {
            throw new QmpException("Parameter 'max-connections' expects a value between 0 and 2147483647");
        }

        var endpoint = ToEndpoint(args.Object("addr"));
        await WithGraphLockAsync(() => _daemon.StartNbdServerAsync(endpoint, most is 0 or null ? null : (int)most), cancellationToken);
        return QmpResult.Empty;
    }

    private static NbdEndpoint ToEndpoint(JsonElement addr)
    {
        var fields = addr.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object ? data : addr;
        string type = new QmpArguments(addr).String("type");
        var members = new QmpArguments(fields);
        switch (type)
        {
            case "unix":
                return NbdEndpoint.Unix(Path.GetFullPath(members.String("path")));
            case "inet":
                string host = members.String("host");
                string port = fields.TryGetProperty("port", out var p) && p.ValueKind == JsonValueKind.Number ? p.GetRawText() : members.String("port");
                try
                {
                    return NbdEndpoint.Parse($"tcp:{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{port}");
                }
                catch (FormatException)
                {
                    throw new QmpException($"Parameter 'addr.port' expects a port number, not '{port}'");
                }

            default:
                throw new QmpException($"Parameter 'addr.type' does not accept value '{type}' (unix, inet)");
        }
    }

    private async Task<QmpResult> NbdServerStopAsync(CancellationToken cancellationToken)
    {
        await WithGraphLockAsync(_daemon.StopNbdServerAsync, cancellationToken);
        return QmpResult.Empty;
    }

    /// <summary>block-export-add {type: nbd, id, node-name, name?, description?, writable?, bitmaps?}.</summary>
    private Task<QmpResult> BlockExportAddAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        string type = args.String("type");
        if (type != "nbd")
        {
            throw new QmpException($"Parameter 'type' does not accept value '{type}' (nbd)");
        }

        string nodeName = args.String("node-name");
        var bitmaps = args.OptionalArray("bitmaps")?.EnumerateArray().Select(ToExportBitmapName).ToList() ?? [];
        return AddExportAsync(args.String("id"), nodeName, args.OptionalString("name") ?? nodeName, args.OptionalString("description"),
            args.OptionalBool("writable", false), bitmaps, cancellationToken);
    }

    /// <summary>nbd-server-add {device, name?, description?, writable?, bitmap?}: block-export-add with the name as its id.</summary>
    private Task<QmpResult> NbdServerAddAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        string device = args.String("device");
        string name = args.OptionalString("name") ?? device;
        List<(string? Node, string Name)> bitmaps = args.OptionalString("bitmap") is { } bitmap ? [(null, bitmap)] : [];
        return AddExportAsync(name, device, name, args.OptionalString("description"), args.OptionalBool("writable", false), bitmaps, cancellationToken);
    }

    /// <summary>
    /// Adds an export of <paramref name="nodeName"/>: a layer below a drive's top is exported
    /// read-only through a frozen view (the pull backup's point in time); the drive itself (its id or
    /// its top's file) only writable, since the guest writes it, unless the drive is read-only. Each
    /// bitmap is offered as qemu:dirty-bitmap:NAME and is busy while the export lives; on a frozen
    /// view it must be disabled, so its bits describe the frozen layer and nothing after it.
    /// </summary>
    private async Task<QmpResult> AddExportAsync(string id, string nodeName, string name, string? description, bool writable,
        IReadOnlyList<(string? Node, string Name)> bitmapNames, CancellationToken cancellationToken)
    {
        if (Encoding.UTF8.GetByteCount(name) > NbdWire.MaxStringLength)
        {
            throw new QmpException($"export name '{name}' too long");
        }

        await _daemon.GraphLock.WaitAsync(cancellationToken);
        try
        {
            if (!_daemon.NbdServerRunning)
            {
                throw new QmpException("NBD server not running");
            }

            if (_daemon.ExportConflict(id, name) is { } conflict)
            {
                throw new QmpException(conflict);
            }

            var drive = ResolveNode(nodeName);
            var layer = drive.FindLayer(nodeName) ?? drive.Top;
            bool live = ReferenceEquals(layer, drive.Top);
            if (writable && drive.ReadOnly)
            {
                throw new QmpException($"Cannot export read-only node '{nodeName}' as writable");
            }

            if (writable && !live)
            {
                throw new QmpException($"'{nodeName}' is a frozen backing image of drive '{drive.Id}': it can only be exported read-only");
            }

            if (live && !writable && !drive.ReadOnly)
            {
                throw new QmpException($"'{nodeName}' is the active image of drive '{drive.Id}': the guest writes it, so a read-only export of it "
                    + "is no point in time; take a snapshot (blockdev-snapshot-sync) and export the image it freezes, or set 'writable'");
            }

            var bitmaps = bitmapNames.Select(b => ToExportBitmap(drive, b.Node, b.Name, frozen: !writable)).ToList();
            if (bitmaps.Select(b => b.Name).Distinct().Count() != bitmaps.Count)
            {
                throw new QmpException("A bitmap is listed twice in 'bitmaps'");
            }

            var view = live ? null : drive.OpenFrozenView(layer, $"export '{id}'");
            var uses = new List<IDisposable>();
            try
            {
                var gate = view?.Gate ?? drive.Gate;
                var export = new NbdExport(name, gate, readOnly: !writable,
                    description ?? (view is null ? $"drive {drive.Id}" : $"point-in-time view of {layer.FileName} (drive {drive.Id})"));
                foreach (var bitmap in bitmaps)
                {
                    if (bitmap.Bits.DiskSize < gate.Size)
                    {
                        throw new QmpException($"Bitmap '{bitmap.Name}' covers {bitmap.Bits.DiskSize} bytes, the export {gate.Size}");
                    }

                    export.AddMetaContext(new DirtyBitmapContext(bitmap.Name, bitmap.Bits));
                    uses.Add(bitmap.Use());
                }

                _daemon.AddBlockExport(new BlockExport(id, nodeName, drive, export, view, uses));
                return QmpResult.Empty;
            }
            catch
            {
                uses.ForEach(u => u.Dispose());
                view?.Dispose();
                throw;
            }
        }
        finally
        {
            _daemon.GraphLock.Release();
        }
    }

    /// <summary>One of block-export-add's bitmaps (BlockDirtyBitmapOrStr): a name, or {node, name}.</summary>
    private static (string? Node, string Name) ToExportBitmapName(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            return (null, value.GetString()!);
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new QmpException("Invalid parameter type for 'bitmaps', expected: array of string or object");
        }

        Check(value, BitmapName, "bitmaps.");
        var named = new QmpArguments(value);
        return (named.String("node"), named.String("name"));
    }

    /// <summary>The bitmap an export offers, checked as QEMU's NBD export checks it.</summary>
    private DriveBitmap ToExportBitmap(Drive drive, string? node, string name, bool frozen)
    {
        if (node is not null && ResolveNode(node) != drive)
        {
            throw new QmpException($"Bitmap '{name}' of '{node}' does not track the exported disk");
        }

        var bitmap = drive.Bitmaps.Find(name) ?? throw new QmpException($"Bitmap '{name}' is not found");
        if (bitmap.Busy)
        {
            throw new QmpException($"Bitmap '{name}' is currently in use by another operation and cannot be used");
        }

        if (bitmap.Inconsistent)
        {
            throw new QmpException($"Bitmap '{name}' is inconsistent and cannot be used");
        }

        if (frozen && bitmap.Recording)
        {
            // Its bits would go on growing with writes the frozen image never sees (QEMU refuses it too).
            throw new QmpException($"Enabled bitmap '{name}' incompatible with readonly export");
        }

        return bitmap;
    }

    /// <summary>block-export-del {id, mode?} and nbd-server-remove {name, mode?}: mode safe (default) refuses while clients are connected, hard disconnects them.</summary>
    private async Task<QmpResult> RemoveExportAsync(string id, string? mode, bool needsServer, CancellationToken cancellationToken)
    {
        bool hard = mode switch
        {
            null or "safe" => false,
            "hard" => true,
            _ => throw new QmpException($"Parameter 'mode' does not accept value '{mode}' (safe, hard)"),
        };
        await _daemon.GraphLock.WaitAsync(cancellationToken);
        try
        {
            if (needsServer && !_daemon.NbdServerRunning)
            {
                throw new QmpException("NBD server not running");
            }

            var export = _daemon.BlockExports.FirstOrDefault(e => e.Id == id);
            if (export is null)
            {
                throw new QmpException(_daemon.DriveExports.Any(e => e.Name == id)
                    ? $"Export '{id}' is drive '{id}''s own export and cannot be removed"
                    : $"Export '{id}' is not found");
            }

            if (export.ShuttingDown)
            {
                throw new QmpException($"Export '{id}' is already shutting down");
            }

            if (!hard && export.Export.ClientCount > 0)
            {
                throw new QmpException($"export '{id}' still in use (mode 'hard' disconnects its clients)");
            }

            _daemon.RemoveBlockExport(export, hard);
            return QmpResult.Empty;
        }
        finally
        {
            _daemon.GraphLock.Release();
        }
    }

    /// <summary>query-block-exports (BlockExportInfo): the drives' own exports, then those added over QMP.</summary>
    private QmpResult QueryBlockExports()
    {
        var drives = _daemon.DriveExports.Select(e => (Id: e.Name, Node: e.Name, ShuttingDown: false));
        var added = _daemon.BlockExports.Select(e => (e.Id, Node: e.NodeName, e.ShuttingDown));
        var all = drives.Concat(added).ToList();
        return new QmpResult(w =>
        {
            w.WriteStartArray();
            foreach (var (id, node, shuttingDown) in all)
            {
                w.WriteStartObject();
                w.WriteString("id", id);
                w.WriteString("type", "nbd");
                w.WriteString("node-name", node);
                w.WriteBoolean("shutting-down", shuttingDown);
                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    private async Task WithGraphLockAsync(Func<Task> action, CancellationToken cancellationToken)
    {
        await _daemon.GraphLock.WaitAsync(cancellationToken);
        try
        {
            await action();
        }
        finally
        {
            _daemon.GraphLock.Release();
        }
    }
}
