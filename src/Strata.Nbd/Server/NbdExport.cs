using Strata.Block;
using Strata.Nbd.Server.MetaContexts;

namespace Strata.Nbd.Server;

/// <summary>
/// What the server exports under one name: a request gate (the drive's), never an image format, and
/// the metadata contexts block status reports on. The server only validates the wire and maps
/// errors; the gate validates and runs the I/O, each context answers for itself.
/// </summary>
public sealed class NbdExport
{
    // Protects writers of _metaContexts, which is replaced whole (readers take it without the lock),
    // and _clients and _retired.
    private readonly Lock _lock = new();
    private readonly HashSet<NbdConnection> _clients = [];
    private readonly TaskCompletionSource _gone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private INbdMetaContext[] _metaContexts;
    private bool _retired;

    public NbdExport(string name, RequestGate gate, bool readOnly = false, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(gate);
        Name = name;
        Gate = gate;
        ReadOnly = readOnly || gate.IsReadOnly;
        Description = description;
        _metaContexts = [ChainStatusContext.BaseAllocation(gate), ChainStatusContext.AllocationDepth(gate)];
    }

    public string Name { get; }

    public string? Description { get; }

    public RequestGate Gate { get; }

    public bool ReadOnly { get; }

    /// <summary>
    /// The metadata contexts offered, in the order they are listed: "base:allocation" and
    /// "qemu:allocation-depth" from the start, then those added. A connection that negotiated a
    /// context keeps it until it negotiates again, even if the context is removed meanwhile.
    /// </summary>
    public IReadOnlyList<INbdMetaContext> MetaContexts => Volatile.Read(ref _metaContexts);

    /// <summary>Offers <paramref name="context"/> to clients that negotiate from now on; its name must be new.</summary>
    public void AddMetaContext(INbdMetaContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        lock (_lock)
        {
            if (_metaContexts.Any(c => c.Name == context.Name))
            {
                throw new ArgumentException($"export '{Name}' already has a metadata context named '{context.Name}'", nameof(context));
            }

            Volatile.Write(ref _metaContexts, [.. _metaContexts, context]);
        }
    }

    /// <summary>Stops offering the context called <paramref name="name"/>; false when there is none.</summary>
    public bool RemoveMetaContext(string name)
    {
        lock (_lock)
        {
            var kept = _metaContexts.Where(c => c.Name != name).ToArray();
            if (kept.Length == _metaContexts.Length)
            {
                return false;
            }

            Volatile.Write(ref _metaContexts, kept);
            return true;
        }
    }

    /// <summary>Connections attached to the export (their client chose it and has not gone).</summary>
    public int ClientCount
    {
        get
        {
            lock (_lock)
            {
                return _clients.Count;
            }
        }
    }

    /// <summary>True once <see cref="Retire"/> was called: no new client may choose the export.</summary>
    public bool IsRetired
    {
        get
        {
            lock (_lock)
            {
                return _retired;
            }
        }
    }

    /// <summary>
    /// Takes the export out of service: from now on no client can attach to it (a client that found it
    /// in the catalog a moment before is refused as if it did not exist). The task completes once the
    /// last attached client has gone; only then may whoever owns what the gate reads let it go.
    /// </summary>
    public Task Retire()
    {
        lock (_lock)
        {
            _retired = true;
            if (_clients.Count == 0)
            {
                _gone.TrySetResult();
            }
        }

        return _gone.Task;
    }

    /// <summary>Closes every attached client's connection at once (requests in flight go unanswered).</summary>
    public void DisconnectClients()
    {
        NbdConnection[] clients;
        lock (_lock)
        {
            clients = [.. _clients];
        }

        foreach (var client in clients)
        {
            client.Abort();
        }
    }

    /// <summary>Attaches a connection whose client chose the export; false when it was retired.</summary>
    internal bool TryAttach(NbdConnection connection)
    {
        lock (_lock)
        {
            return !_retired && _clients.Add(connection);
        }
    }

    /// <summary>The connection has ended; the last one to leave a retired export completes <see cref="Retire"/>'s task.</summary>
    internal void Detach(NbdConnection connection)
    {
        lock (_lock)
        {
            if (_clients.Remove(connection) && _retired && _clients.Count == 0)
            {
                _gone.TrySetResult();
            }
        }
    }
}
