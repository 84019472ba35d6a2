using Strata.Daemon.Control;
using Strata.Daemon.Exports;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;

namespace Strata.Daemon;

/// <summary>
/// The NBD server's life at run time (nbd-server-start, nbd-server-stop) and the exports added over
/// QMP (block-export-add, nbd-server-add; docs/backup-pull.md). The drives' own exports are made at
/// start and stay; these come and go, and the catalog the NBD handshakes read offers both.
/// </summary>
/// <remarks>The QMP handlers call these under <see cref="GraphLock"/>, one at a time.</remarks>
public sealed partial class StorageDaemon
{
    // Protects _nbd and _nbdListening; _blockExports is replaced whole under it (handshakes read it without the lock).
    private readonly Lock _exportsLock = new();
    private NbdServer? _nbd;
    private bool _nbdListening;
    private BlockExport[] _blockExports = [];

    /// <summary>True while the NBD server listens (started with --nbd, or by nbd-server-start).</summary>
    public bool NbdServerRunning
    {
        get
        {
            lock (_exportsLock)
            {
                return _nbdListening;
            }
        }
    }

    /// <summary>The exports added over QMP, those shutting down included, in the order they were added.</summary>
    public IReadOnlyList<BlockExport> BlockExports => Volatile.Read(ref _blockExports);

    /// <summary>The drives' own exports, one per drive, named after it.</summary>
    public IReadOnlyList<NbdExport> DriveExports => _exports;

    private NbdServer? CurrentNbdServer
    {
        get
        {
            lock (_exportsLock)
            {
                return _nbd;
            }
        }
    }

    /// <summary>nbd-server-start: listens on <paramref name="endpoint"/>; refused while the server already listens.</summary>
    public async Task StartNbdServerAsync(NbdEndpoint endpoint, int? maxConnections)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (NbdServerRunning)
        {
            throw new InvalidOperationException("NBD server already running");
        }

        RefuseLiveSocket(endpoint);
        var options = maxConnections is { } most ? _options.Nbd with { MaxConnections = most } : _options.Nbd;
        var server = NewNbdServer(options);
        NbdServer? idle;
        try
        {
            CreateParent(endpoint);
            server.Listen(endpoint);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        lock (_exportsLock)
        {
            idle = _nbd;
            _nbd = server;
            _nbdListening = true;
        }

        AddSocketFile(endpoint);
        if (idle is not null)
        {
            // It listened nowhere (or was stopped): nothing of it is in use.
            await idle.DisposeAsync();
        }
    }

    /// <summary>
    /// nbd-server-stop: removes every export added over QMP at once (their clients are disconnected,
    /// as QEMU does), stops listening and closes every connection after it answered what it had in
    /// flight. The drives' own exports stay in the catalog: the next nbd-server-start offers them again.
    /// </summary>
    public async Task StopNbdServerAsync()
    {
        NbdServer server;
        lock (_exportsLock)
        {
            if (!_nbdListening || _nbd is null)
            {
                throw new InvalidOperationException("NBD server not running");
            }

            server = _nbd;
            _nbdListening = false;
        }

        foreach (var export in BlockExports.Where(e => !e.ShuttingDown))
        {
            RemoveBlockExport(export, hard: true);
        }

        await server.StopAsync();
        Log("nbd: server stopped");
        lock (_exportsLock)
        {
            _nbd = NewNbdServer(_options.Nbd);
        }
    }

    /// <summary>The export id or NBD name already taken, for block-export-add's refusal; null when both are free.</summary>
    public string? ExportConflict(string id, string name)
    {
        if (_exports.Any(e => e.Name == id) || BlockExports.Any(e => e.Id == id))
        {
            return $"Block export id '{id}' is already in use";
        }

        return List().Any(e => e.Name == name) ? $"NBD server already has export named '{name}'" : null;
    }

    /// <summary>Offers <paramref name="export"/> to NBD clients from now on (its id and name were checked free).</summary>
    public void AddBlockExport(BlockExport export)
    {
        ArgumentNullException.ThrowIfNull(export);
        lock (_exportsLock)
        {
            Volatile.Write(ref _blockExports, [.. _blockExports, export]);
        }

        Log($"export '{export.Id}': {export.Export.Name} of {export.NodeName}{(export.Export.ReadOnly ? ", read-only" : "")}");
    }

    /// <summary>
    /// Takes <paramref name="export"/> out of the catalog at once (no new client can choose it); with
    /// <paramref name="hard"/> its clients are disconnected. Once the last has gone, its view and
    /// bitmaps are let go, it leaves <see cref="BlockExports"/> and BLOCK_EXPORT_DELETED says so.
    /// </summary>
    public void RemoveBlockExport(BlockExport export, bool hard)
    {
        ArgumentNullException.ThrowIfNull(export);
        var gone = export.Export.Retire();
        if (hard)
        {
            export.Export.DisconnectClients();
        }

        _ = FinishRemovalAsync(export, gone);
    }

    private async Task FinishRemovalAsync(BlockExport export, Task gone)
    {
        await gone;
        export.Release();
        lock (_exportsLock)
        {
            Volatile.Write(ref _blockExports, _blockExports.Where(e => e != export).ToArray());
        }

        Log($"export '{export.Id}': removed");
        Emit(new QmpEvent("BLOCK_EXPORT_DELETED", w =>
        {
            w.WriteStartObject();
            w.WriteString("id", export.Id);
            w.WriteEndObject();
        }));
    }

    private IEnumerable<NbdExport> ServedBlockExports() => BlockExports.Where(e => !e.ShuttingDown).Select(e => e.Export);

    private NbdServer NewNbdServer(NbdServerOptions options) => new(this, options with { Log = options.Log ?? _options.Log });

    private void ListenNbd(NbdEndpoint endpoint)
    {
        CreateParent(endpoint);
        CurrentNbdServer!.Listen(endpoint);
        AddSocketFile(endpoint);
        lock (_exportsLock)
        {
            _nbdListening = true;
        }
    }
}
