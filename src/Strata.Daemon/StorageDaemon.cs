using System.Net.Sockets;
using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Block.Graph;
using Strata.Daemon.Control;
using Strata.Daemon.Live;
using Strata.Formats;
using Strata.Formats.DirtyBitmaps;
using Strata.Formats.Raw;
using Strata.Nbd.Server;
using Strata.Nbd.Server.MetaContexts;
using Strata.Nbd.Transport;

namespace Strata.Daemon;

/// <summary>
/// The process behind <c>strata serve</c>: its drives, the NBD server exporting them, the control
/// sockets, the pid file. <see cref="StopAsync"/> stops accepting, cancels merge jobs, lets in-flight
/// requests finish, flushes and closes every image, and removes the sockets and the pid file, each
/// stage bounded (docs/serve.md, "Stopping").
/// </summary>
public sealed partial class StorageDaemon : INbdExportCatalog, IAsyncDisposable
{
    private readonly DaemonOptions _options;

    // Opens the warm-up's images; each drive has an opener over its own drivers.
    private readonly ImageLayerOpener _opener = new();
    private readonly List<Drive> _drives = [];
    // The drives' own exports, one per drive, made at start and never changed (exports added over QMP: StorageDaemon.Exports.cs).
    private readonly List<NbdExport> _exports = [];
    private readonly List<QmpServer> _controls = [];
    private readonly TaskCompletionSource _stopRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // The unix socket files this daemon bound, removed when it stops.
    private readonly List<string> _socketFiles = [];
    private string? _pidFileWritten;

    // Protects _pauses and _stop (and the error policies' state: StorageDaemon.IoErrors.cs).
    private readonly Lock _lock = new();
    private List<RequestGate.Drain>? _pauses;
    private Task? _stop;
    private Task? _warmUp;

    // The checkpoint loop of bitmap files, stopped first thing when the daemon stops.
    private readonly CancellationTokenSource _stopCheckpoints = new();
    private Task? _checkpoints;

    public StorageDaemon(DaemonOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        Jobs = new BlockJobs(Emit);
    }

    /// <summary>Raised for every QMP event; each control connection forwards it to its client.</summary>
    public event Action<QmpEvent>? EventRaised;

    /// <summary>The merge and backup jobs (query-jobs).</summary>
    public BlockJobs Jobs { get; }

    /// <summary>The nodes blockdev-add made (backup targets), closed when the daemon stops.</summary>
    public BlockNodes Nodes { get; } = new();

    /// <summary>Serializes graph changes (snapshots, merges) so two commands never interleave theirs.</summary>
    public SemaphoreSlim GraphLock { get; } = new(1, 1);

    public void Emit(QmpEvent e) => EventRaised?.Invoke(e);

    public IReadOnlyList<Drive> Drives => _drives;

    public DaemonOptions Options => _options;

    /// <summary>
    /// How long a stop waits for requests in flight and for jobs to cancel, and then again for the
    /// images to be flushed and closed, before it gives up on what has not finished (5 s each).
    /// </summary>
    public TimeSpan StopGracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Completes when someone asked the daemon to stop (QMP <c>quit</c>, a signal).</summary>
    public Task StopRequested => _stopRequested.Task;

    /// <summary>True while guest I/O is held: by stop or -S, or by a failure under an error policy of stop.</summary>
    public bool IsPaused
    {
        get
        {
            lock (_lock)
            {
                return _pauses is not null || _stoppedByError;
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
                var drive = await Drive.OpenAsync(spec.Id, spec.File,
                    new LayerOpenOptions { Format = spec.Format, ReadOnly = spec.ReadOnly, Direct = spec.Direct }, new ImageLayerOpener(spec.Drivers), cancellationToken);
                _drives.Add(drive);
                _exports.Add(new NbdExport(drive.Id, drive.Gate, drive.ReadOnly, $"{drive.Root.DriverName} image {spec.File}"));
                Log($"drive {drive.Id}: {drive.Root.DriverName} {spec.File}, {drive.Root.Size} bytes{(drive.ReadOnly ? ", read-only" : "")}");
                drive.Bitmaps.Files = _options.BitmapFiles ?? new DirtyBitmapFiles(spec.Drivers ?? StandardDrivers.Registry);
                WatchErrors(drive, spec);
                if (_options.Log is not null)
                {
                    string id = drive.Id;
                    drive.Bitmaps.Warning += line => Log($"drive {id}: {line}");
                    drive.Gate.HoldEnded += (count, longest) =>
                        Log($"drive {id}: {count} guest request{(count == 1 ? "" : "s")} held, the longest for {longest.TotalMilliseconds:0.000} ms");
                }
            }

            await TrackBitmapFilesAsync(cancellationToken);
            PublishBitmaps();
            StartGuests();
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

            lock (_exportsLock)
            {
                _nbd = NewNbdServer(_options.Nbd);
            }

            foreach (var endpoint in _options.NbdEndpoints)
            {
                ListenNbd(endpoint);
            }

            foreach (var endpoint in _options.QmpEndpoints)
            {
                CreateParent(endpoint);
                var control = new QmpServer(this, endpoint, _options.Log);
                _controls.Add(control);
                control.Start();
                AddSocketFile(endpoint);
            }

            if (_options.PidFile is { } pidFile)
            {
                // Written aside and renamed, so a reader never sees an empty pid file. The temporary
                // must be new (O_EXCL, O_NOFOLLOW): a link planted at its name is never followed.
                // Something already there (a killed daemon's leftover, a planted link) is unlinked,
                // which never touches what a link points to, and the creation is tried once more.
                string temporary = pidFile + ".tmp";
                try
                {
                    NewFile.WriteAllText(temporary, $"{Environment.ProcessId}\n");
                }
                catch (BlockException) when (new FileInfo(temporary) is { Exists: true } or { LinkTarget: not null })
                {
                    File.Delete(temporary);
                    NewFile.WriteAllText(temporary, $"{Environment.ProcessId}\n");
                }

                File.Move(temporary, pidFile, overwrite: true);
                _pidFileWritten = pidFile;
            }

            if (_drives.Any(d => !d.ReadOnly))
            {
                _warmUp = SnapshotWarmUp.RunAsync(_opener, _options.Log);
                if (_options.BitmapCheckpointInterval != Timeout.InfiniteTimeSpan)
                {
                    _checkpoints = CheckpointBitmapsAsync(_options.BitmapCheckpointInterval, _stopCheckpoints.Token);
                }
            }
        }
        catch
        {
            try
            {
                await StopAsync();
            }
            catch (IOException)
            {
                // The start's own error is the one to report.
            }

            throw;
        }
    }

    /// <summary>
    /// Every <paramref name="interval"/>, checkpoints each drive's bitmap files, one drive at a time
    /// under the graph lock (no snapshot or bitmap command interleaves). A drain that times out (a
    /// hung request) or a failed write is logged and tried again next time.
    /// </summary>
    private async Task CheckpointBitmapsAsync(TimeSpan interval, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                foreach (var drive in _drives)
                {
                    await GraphLock.WaitAsync(stop);
                    try
                    {
                        foreach (string problem in await drive.CheckpointBitmapsAsync(stop))
                        {
                            Log($"drive {drive.Id}: {problem}");
                        }
                    }
                    catch (BlockException e)
                    {
                        Log($"drive {drive.Id}: bitmap checkpoint skipped: {e.Message}");
                    }
                    finally
                    {
                        GraphLock.Release();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The daemon is stopping; closing the drives saves every bitmap.
        }
    }

    /// <summary>The --bitmap files: each drive tracks its own from the start, opened (recovered after a crash) or created, before anything is served.</summary>
    private async Task TrackBitmapFilesAsync(CancellationToken cancellationToken)
    {
        foreach (var spec in _options.Bitmaps)
        {
            var drive = FindDrive(spec.Drive) ?? throw new ArgumentException($"--bitmap: no drive has the id '{spec.Drive}'");
            // Before the daemon serves anything: a file recorded unchanged at its last close keeps its lineage (docs/bitmaps.md, "Persistence").
            await Drive.ChangeBitmapsAsync([new BitmapAction(BitmapActionKind.Add, drive, spec.Name) { File = spec.File, Quiet = true }], cancellationToken);
            var bitmap = drive.Bitmaps.Find(spec.Name)!;
            Log($"drive {drive.Id}: bitmap '{spec.Name}' tracks into {spec.File}, {bitmap.Bits.Granularity}-byte granularity, {bitmap.Bits.DirtyBytes} bytes dirty");
        }
    }

    /// <summary>Asks the daemon to stop; whoever awaits <see cref="StopRequested"/> then calls <see cref="StopAsync"/>.</summary>
    public void RequestStop() => _stopRequested.TrySetResult();

    /// <summary>
    /// Holds guest I/O on every drive (QMP <c>stop</c>); false when it was already held. A drain that
    /// times out releases the drives already held and throws: the guest runs on. A resume that comes
    /// while the drives are being drained wins: the drains taken after it are released at once.
    /// </summary>
    public async Task<bool> PauseAsync(CancellationToken cancellationToken = default)
    {
        List<RequestGate.Drain> pauses = [];
        lock (_lock)
        {
            if (_pauses is not null)
            {
                return false;
            }

            _pauses = pauses;
        }

        foreach (var drive in _drives)
        {
            RequestGate.Drain drain;
            try
            {
                drain = await drive.Gate.DrainAsync(cancellationToken);
            }
            catch
            {
                ReleasePauses(pauses);
                throw;
            }

            lock (_lock)
            {
                if (ReferenceEquals(_pauses, pauses))
                {
                    pauses.Add(drain);
                    continue;
                }
            }

            // Resumed meanwhile.
            drain.Dispose();
            return true;
        }

        Log("guest I/O held (stop)");
        return true;
    }

    /// <summary>
    /// Lets held guest I/O run (QMP <c>cont</c>), and the requests a failure held run again; false
    /// when nothing was held.
    /// </summary>
    public bool Resume()
    {
        bool afterError = ContinueAfterErrors();
        List<RequestGate.Drain>? pauses;
        lock (_lock)
        {
            pauses = _pauses;
            _pauses = null;
        }

        if (pauses is null && !afterError)
        {
            return false;
        }

        ReleasePauses(pauses ?? []);
        Log("guest I/O resumed");
        return true;
    }

    /// <summary>Ends the pause <paramref name="pauses"/> (if it is still the daemon's) and releases its drains.</summary>
    private void ReleasePauses(List<RequestGate.Drain> pauses)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_pauses, pauses))
            {
                _pauses = null;
            }

            pauses = [.. pauses];
        }

        foreach (var pause in pauses)
        {
            pause.Dispose();
        }
    }

    public Drive? FindDrive(string id) => _drives.Find(d => d.Id == id);

    /// <summary>
    /// Makes each drive's export offer "qemu:dirty-bitmap:NAME" for exactly the bitmaps the drive
    /// has now (docs/bitmaps.md, "Over NBD"): called after every change of bitmaps, under the graph
    /// lock. A connection that chose a context keeps reading the bits it chose.
    /// </summary>
    public void PublishBitmaps()
    {
        foreach (var drive in _drives)
        {
            var export = _exports.Find(e => e.Name == drive.Id)!;
            var bitmaps = drive.Bitmaps.All;
            foreach (var context in export.MetaContexts.OfType<DirtyBitmapContext>().ToList())
            {
                if (!bitmaps.Any(b => context.Name == DirtyBitmapContext.NameOf(b.Name) && ReferenceEquals(context.Bits, b.Bits)))
                {
                    export.RemoveMetaContext(context.Name);
                }
            }

            foreach (var bitmap in bitmaps)
            {
                if (!export.MetaContexts.Any(c => c.Name == DirtyBitmapContext.NameOf(bitmap.Name)))
                {
                    export.AddMetaContext(new DirtyBitmapContext(bitmap.Name, bitmap.Bits));
                }
            }
        }
    }

    public IReadOnlyList<NbdExport> List() => [.. _exports, .. ServedBlockExports()];

    public NbdExport? Find(string name)
    {
        var all = List();
        if (name.Length == 0 && all.Count == 1)
        {
            // The default export, so that nbd+unix:///?socket=… works when there is one drive.
            return all[0];
        }

        return all.FirstOrDefault(e => e.Name == name);
    }

    /// <summary>
    /// Stops the daemon (docs/serve.md, "Stopping"); every caller gets the same stop. Throws
    /// <see cref="IOException"/> (one line) when something could not be finished or closed within
    /// <see cref="StopGracePeriod"/>: the rest was done all the same.
    /// </summary>
    public Task StopAsync()
    {
        lock (_lock)
        {
            // Run apart from the lock: the stop takes it again (Resume).
            return _stop ??= Task.Run(StopOnceAsync);
        }
    }

    /// <summary>
    /// Stops the daemon like <see cref="StopAsync"/>; a failure already thrown to a caller of
    /// <see cref="StopAsync"/> is not thrown again.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        Task? earlier;
        lock (_lock)
        {
            earlier = _stop;
        }

        if (earlier is null)
        {
            await StopAsync();
            return;
        }

        try
        {
            await earlier;
        }
        catch (IOException)
        {
            // The caller of StopAsync has it.
        }
    }

    /// <summary>
    /// The stop rule: no new commands; no new requests, those in flight answered, while the merge jobs
    /// are cancelled; then every drive drained, flushed and closed; sockets and pid file removed.
    /// QEMU stops in the same order (qemu-storage-daemon closes its exports, then job_cancel_sync_all,
    /// then bdrv_close_all; system/runstate.c qemu_cleanup likewise) but waits without bound. Here
    /// requests and jobs share one grace period and flushing and closing get another, so whatever a
    /// node does the stop ends; what it had to abandon is logged and thrown.
    /// </summary>
    private async Task StopOnceAsync()
    {
        Log("stopping: no new connections, cancelling merge jobs, finishing requests in flight");
        // Guests first: a frozen guest blocks every application in it until it is thawed.
        var problems = await StopGuestsAsync();
        await _stopCheckpoints.CancelAsync();
        if (_checkpoints is not null)
        {
            await _checkpoints;
        }

        using (var requests = new CancellationTokenSource(StopGracePeriod))
        {
            if (!await FinishesAsync(Task.WhenAll(_controls.Select(c => c.DisposeAsync().AsTask())), requests.Token))
            {
                problems.Add("a control command was still running");
            }

            // Held requests must be let through, or they could never finish; those a failure held are
            // answered with their error rather than tried again (docs/serve.md, "When the disk fails").
            foreach (var drive in _drives)
            {
                drive.Gate.FailHeldRequests();
            }

            Resume();
            var server = CurrentNbdServer;
            var nbd = server is null ? Task.CompletedTask : server.DisposeAsync().AsTask();
            var jobs = Jobs.CancelAllAsync(requests.Token);
            if (_warmUp is not null && !await FinishesAsync(_warmUp, requests.Token))
            {
                problems.Add("the snapshot warm-up did not finish");
            }

            if (!await FinishesAsync(nbd, requests.Token))
            {
                problems.Add("NBD connections were still busy, abandoned");
            }

            var stuckJobs = await jobs;
            foreach (var entry in stuckJobs)
            {
                problems.Add($"job {entry.Job.Id} did not finish cancelling");
            }

            using var flushing = new CancellationTokenSource(StopGracePeriod);
            var closed = await Task.WhenAll(_drives.Select(drive => CloseDriveAsync(drive, stuckJobs, requests.Token, flushing.Token)));
            problems.AddRange(closed.OfType<string>());
            problems.AddRange(await Nodes.CloseAllAsync());
        }

        // Only a pid file this daemon wrote: one that start never reached may be another daemon's.
        foreach (string path in _socketFiles.Append(_pidFileWritten).OfType<string>())
        {
            // The servers remove their own sockets; one is left here only where its stop was abandoned.
            File.Delete(path);
        }

        foreach (var problem in problems)
        {
            Log($"stop: {problem}");
        }

        RequestStop();
        if (problems.Count > 0)
        {
            throw new IOException($"stopped, but {string.Join("; ", problems)}");
        }
    }

    /// <summary>Closes one drive within the deadlines; a drive a job still writes is only flushed. Returns what went wrong.</summary>
    private async Task<string?> CloseDriveAsync(Drive drive, IReadOnlyList<BlockJobEntry> stuckJobs, CancellationToken requests, CancellationToken flushing)
    {
        try
        {
            if (stuckJobs.Any(e => e.Drive == drive))
            {
                // Closing images a job still writes could tear them: flush what can be, close nothing.
                await drive.Gate.FlushNodesAsync(flushing).AsTask().WaitAsync(flushing);
                return $"drive {drive.Id}: flushed, not closed (its job still runs)";
            }

            await drive.CloseAsync(requests, flushing);
            Log($"drive {drive.Id}: flushed and closed");
            return null;
        }
        catch (OperationCanceledException)
        {
            return $"drive {drive.Id}: flushing did not finish by the deadline; not closed";
        }
        catch (Exception e) when (e is IOException or BlockException)
        {
            return e.Message;
        }
    }

    /// <summary>True when <paramref name="task"/> ends before <paramref name="deadline"/>, well or not (its own failure is not the stop's).</summary>
    private static async Task<bool> FinishesAsync(Task task, CancellationToken deadline)
    {
        try
        {
            await task.WaitAsync(deadline);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or BlockException)
        {
            // That part stopped, badly; the drives are still closed after it.
        }

        return true;
    }

    private void AddSocketFile(NbdEndpoint endpoint)
    {
        if (endpoint.UnixPath is { } path)
        {
            _socketFiles.Add(Path.GetFullPath(path));
        }
    }

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
