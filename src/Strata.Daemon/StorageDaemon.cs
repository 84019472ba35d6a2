using System.Net.Sockets;
using Strata.Block;
using Strata.Daemon.Control;
using Strata.Daemon.Live;
using Strata.Formats.Raw;
using Strata.Nbd.Server;
using Strata.Nbd.Transport;

namespace Strata.Daemon;

/// <summary>
/// The process behind <c>strata serve</c>: its drives, the NBD server exporting them, the control
/// sockets, the pid file. <see cref="StopAsync"/> stops accepting, lets in-flight requests finish,
/// flushes and closes every image, and removes the sockets and the pid file.
/// </summary>
public sealed class StorageDaemon : INbdExportCatalog, IAsyncDisposable
{
    private readonly DaemonOptions _options;
    private readonly List<Drive> _drives = [];
    private readonly List<NbdExport> _exports = [];
    private readonly List<QmpServer> _controls = [];
    private readonly TaskCompletionSource _stopRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Protects _pauses and _stopped.
    private readonly Lock _lock = new();
    private List<RequestGate.Drain>? _pauses;
    private bool _stopped;
    private NbdServer? _nbd;
    private Task? _warmUp;

    public StorageDaemon(DaemonOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        Jobs = new BlockJobs(Emit);
    }

    /// <summary>Raised for every QMP event; each control connection forwards it to its client.</summary>
    public event Action<QmpEvent>? EventRaised;

    /// <summary>The merge jobs (query-jobs).</summary>
    public BlockJobs Jobs { get; }

    /// <summary>Serializes graph changes (snapshots, merges) so two commands never interleave theirs.</summary>
    public SemaphoreSlim GraphLock { get; } = new(1, 1);

    public void Emit(QmpEvent e) => EventRaised?.Invoke(e);

    public IReadOnlyList<Drive> Drives => _drives;

    public DaemonOptions Options => _options;

    /// <summary>Completes when someone asked the daemon to stop (QMP <c>quit</c>, a signal).</summary>
    public Task StopRequested => _stopRequested.Task;

    public bool IsPaused
    {
        get
        {
            lock (_lock)
            {
                return _pauses is not null;
            }
        }
    }

    /// <summary>Opens the drives, writes the pid file and starts listening. On failure nothing is left behind.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var ids = new HashSet<string>();
        foreach (var spec in _options.Drives)
        {
            if (!ids.Add(spec.Id))
            {
                throw new ArgumentException($"two drives have the id '{spec.Id}'");
            }
        }

        try
        {
            foreach (var spec in _options.Drives)
            {
                var drive = await Drive.OpenAsync(spec, cancellationToken);
                _drives.Add(drive);
                _exports.Add(new NbdExport(drive.Id, drive.Gate, drive.ReadOnly, $"{drive.Root.DriverName} image {spec.File}"));
                Log($"drive {drive.Id}: {drive.Root.DriverName} {spec.File}, {drive.Root.Size} bytes{(drive.ReadOnly ? ", read-only" : "")}");
                if (_options.Log is not null)
                {
                    string id = drive.Id;
                    drive.Gate.HoldEnded += (count, longest) =>
                        Log($"drive {id}: {count} guest request{(count == 1 ? "" : "s")} held, the longest for {longest.TotalMilliseconds:0.000} ms");
                }
            }

            if (_options.StartPaused)
            {
                var pauses = new List<RequestGate.Drain>();
                foreach (var drive in _drives)
                {
                    pauses.Add(await drive.Gate.DrainAsync(cancellationToken));
                }

                lock (_lock)
                {
                    _pauses = pauses;
                }

                Log("guest I/O held until 'cont' (-S)");
            }

            foreach (var endpoint in _options.NbdEndpoints.Concat(_options.QmpEndpoints))
            {
                RefuseLiveSocket(endpoint);
            }

            _nbd = new NbdServer(this, _options.Nbd with { Log = _options.Nbd.Log ?? _options.Log });
            foreach (var endpoint in _options.NbdEndpoints)
            {
                CreateParent(endpoint);
                _nbd.Listen(endpoint);
            }

            foreach (var endpoint in _options.QmpEndpoints)
            {
                CreateParent(endpoint);
                var control = new QmpServer(this, endpoint, _options.Log);
                _controls.Add(control);
                control.Start();
            }

            if (_options.PidFile is { } pidFile)
            {
                // Written aside and renamed, so a reader never sees an empty pid file. The temporary
                // must be new (O_EXCL, O_NOFOLLOW): a link planted at its name is never followed.
                string temporary = pidFile + ".tmp";
                NewFile.WriteAllText(temporary, $"{Environment.ProcessId}\n");
                File.Move(temporary, pidFile, overwrite: true);
            }

            if (_drives.Any(d => !d.ReadOnly))
            {
                _warmUp = SnapshotWarmUp.RunAsync(_options.Log);
            }
        }
        catch
        {
            await StopAsync();
            throw;
        }
    }

    /// <summary>Asks the daemon to stop; whoever awaits <see cref="StopRequested"/> then calls <see cref="StopAsync"/>.</summary>
    public void RequestStop() => _stopRequested.TrySetResult();

    /// <summary>Holds guest I/O on every drive (QMP <c>stop</c>); false when it was already held.</summary>
    public async Task<bool> PauseAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_pauses is not null)
            {
                return false;
            }

            _pauses = [];
        }

        var pauses = new List<RequestGate.Drain>();
        foreach (var drive in _drives)
        {
            pauses.Add(await drive.Gate.DrainAsync(cancellationToken));
        }

        lock (_lock)
        {
            _pauses.AddRange(pauses);
        }

        Log("guest I/O held (stop)");
        return true;
    }

    /// <summary>Lets held guest I/O run (QMP <c>cont</c>); false when it was not held.</summary>
    public bool Resume()
    {
        List<RequestGate.Drain>? pauses;
        lock (_lock)
        {
            pauses = _pauses;
            _pauses = null;
        }

        if (pauses is null)
        {
            return false;
        }

        foreach (var pause in pauses)
        {
            pause.Dispose();
        }

        Log("guest I/O resumed");
        return true;
    }

    public Drive? FindDrive(string id) => _drives.Find(d => d.Id == id);

    public IReadOnlyList<NbdExport> List() => _exports;

    public NbdExport? Find(string name)
    {
        if (name.Length == 0 && _exports.Count == 1)
        {
            // The default export, so that nbd+unix:///?socket=… works when there is one drive.
            return _exports[0];
        }

        return _exports.Find(e => e.Name == name);
    }

    public async Task StopAsync()
    {
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
        }

        Log("stopping: no new connections, finishing requests in flight");
        foreach (var control in _controls)
        {
            await control.DisposeAsync();
        }

        // Held requests must be let through, or they could never finish.
        Resume();
        if (_warmUp is not null)
        {
            await _warmUp;
        }

        if (_nbd is not null)
        {
            await _nbd.DisposeAsync();
        }

        var errors = new List<Exception>();
        foreach (var drive in _drives)
        {
            try
            {
                await drive.DisposeAsync();
                Log($"drive {drive.Id}: flushed and closed");
            }
            catch (IOException e)
            {
                errors.Add(e);
            }
        }

        if (_options.PidFile is { } pidFile)
        {
            File.Delete(pidFile);
        }

        RequestStop();
        if (errors.Count > 0)
        {
            throw new IOException($"closing the drives failed: {errors[0].Message}", errors[0]);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    internal void Log(string message) => _options.Log?.Invoke(message);

    private static void CreateParent(NbdEndpoint endpoint)
    {
        if (endpoint.UnixPath is { } path && Path.GetDirectoryName(Path.GetFullPath(path)) is { } folder)
        {
            System.IO.Directory.CreateDirectory(folder);
        }
    }

    /// <summary>A socket file another live server answers on is never stolen; a stale one is replaced.</summary>
    private static void RefuseLiveSocket(NbdEndpoint endpoint)
    {
        if (endpoint.UnixPath is not { } path || !File.Exists(path))
        {
            return;
        }

        using var probe = endpoint.CreateSocket();
        try
        {
            probe.Connect(endpoint.EndPoint);
        }
        catch (SocketException)
        {
            return;
        }

        throw new IOException($"'{path}' is in use by another server");
    }
}
