using System.Diagnostics;
using System.Text.Json.Nodes;
using Strata.Daemon.Control;

namespace Strata.Bench.Live;

/// <summary>
/// A block server under test, in its own process, with one drive exported over NBD as "disk" and a
/// QMP socket: strata serve or qemu-storage-daemon. Snapshot and merge go through QMP, with the
/// arguments each server expects; the QMP client is the project's own.
/// </summary>
internal abstract class LiveServer : IAsyncDisposable
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly string[] ReadyOrEnd = ["BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"];
    private static readonly string[] End = ["BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"];

    private RunningProcess? _process;
    private QmpClient? _qmp;
    private int _merges;

    protected LiveServer(string name, string folder)
    {
        Name = name;
        NbdSocket = Path.Combine(folder, $"{name}-nbd.sock");
        QmpSocket = Path.Combine(folder, $"{name}-qmp.sock");
    }

    /// <summary>The name in the tables: "strata" or "qsd".</summary>
    public string Name { get; }

    /// <summary>The export as fio's nbd engine (libnbd) takes it.</summary>
    public string NbdUri => $"nbd+unix:///disk?socket={NbdSocket}";

    public string NbdSocket { get; }

    /// <summary>The QMP socket, for a tool that drives the server itself (strata backup --qmp).</summary>
    public string ControlSocket => QmpSocket;

    /// <summary>Another export of the server's NBD socket, as libnbd's tools take it.</summary>
    public string ExportUri(string name) => $"nbd+unix:///{name}?socket={NbdSocket}";

    protected string QmpSocket { get; }

    private QmpClient Qmp => _qmp ?? throw new InvalidOperationException("the server is not started");

    /// <summary>The node QMP's block-dirty-bitmap commands name for the exported disk.</summary>
    public abstract string BitmapNode { get; }

    /// <summary>The server's resident memory now, in bytes (VmRSS).</summary>
    public long ResidentBytes()
    {
        var process = _process ?? throw new InvalidOperationException("the server is not started");
        foreach (string line in File.ReadLines($"/proc/{process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException($"{Name}: no VmRSS in /proc/{process.Id}/status");
    }

    /// <summary>The bytes the server has read so far by read(2)-family calls (rchar in /proc/PID/io), page cache included.</summary>
    public long ReadBytes()
    {
        var process = _process ?? throw new InvalidOperationException("the server is not started");
        string line = File.ReadLines($"/proc/{process.Id}/io").First(l => l.StartsWith("rchar:", StringComparison.Ordinal));
        return long.Parse(line["rchar:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The CPU time the server has used so far, every thread, user and system (utime + stime in
    /// /proc/PID/stat, in clock ticks of 1/100 s, Linux's USER_HZ on every architecture it runs on here).
    /// </summary>
    public double CpuSeconds()
    {
        var process = _process ?? throw new InvalidOperationException("the server is not started");
        string stat = File.ReadAllText($"/proc/{process.Id}/stat");

        // The command name in parentheses may hold spaces: the fields are counted from its closing one.
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        const int UserTicks = 11, SystemTicks = 12; // utime and stime, fields 14 and 15 of proc(5), counted from state (field 3)
        return (long.Parse(fields[UserTicks], System.Globalization.CultureInfo.InvariantCulture)
            + long.Parse(fields[SystemTicks], System.Globalization.CultureInfo.InvariantCulture)) / 100.0;
    }

    /// <summary>Starts the process and waits (bounded) until its NBD and QMP sockets answer.</summary>
    public async Task StartAsync(DiskImage disk, CancellationToken cancellationToken)
    {
        var (program, args) = CommandLine(disk);
        _process = RunningProcess.Start(program, args);
        var clock = Stopwatch.StartNew();
        while (!File.Exists(QmpSocket) || !File.Exists(NbdSocket))
        {
            if (_process.HasExited)
            {
                var (stdout, stderr) = await _process.OutputAsync();
                throw new InvalidOperationException($"{Name} exited at start ({_process.ExitCode}): {stderr.Trim()} {stdout.Trim()}");
            }

            if (clock.Elapsed > StartTimeout)
            {
                throw new TimeoutException($"{Name} did not open its sockets within {StartTimeout.TotalSeconds:0} s");
            }

            await Task.Delay(20, cancellationToken);
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(StartTimeout);
        _qmp = await QmpClient.ConnectAsync(QmpSocket, limit.Token);
    }

    /// <summary>A live snapshot: from its return on, the drive writes to <paramref name="overlay"/> (created).</summary>
    public async Task SnapshotAsync(string overlay, CancellationToken cancellationToken)
    {
        await ExecuteAsync("blockdev-snapshot-sync", SnapshotArguments(overlay), cancellationToken);
        OnSnapshot();
    }

    /// <summary>
    /// An active merge of the whole chain into its base: block-commit, BLOCK_JOB_READY, job-complete
    /// at once, BLOCK_JOB_COMPLETED. A merge not done within <paramref name="timeout"/> is cancelled
    /// (bounded too) and reported as not converged.
    /// </summary>
    public async Task<MergeResult> MergeAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        string id = $"merge{++_merges}";
        var clock = Stopwatch.StartNew();
        await ExecuteAsync("block-commit", CommitArguments(id), cancellationToken);
        var first = await NextJobEventAsync(id, ReadyOrEnd, timeout - clock.Elapsed, cancellationToken);
        if (first is null)
        {
            return await AbandonAsync(id, null, timeout, cancellationToken);
        }

        if (EventName(first) != "BLOCK_JOB_READY")
        {
            return new MergeResult(null, null, $"{EventName(first)} before ready: {first["data"]?["error"]}");
        }

        var ready = clock.Elapsed;
        await ExecuteAsync("job-complete", new JsonObject { ["id"] = id }, cancellationToken);
        var end = await NextJobEventAsync(id, End, timeout - clock.Elapsed, cancellationToken);
        if (end is null)
        {
            return await AbandonAsync(id, ready, timeout, cancellationToken);
        }

        var completed = clock.Elapsed;
        if (EventName(end) != "BLOCK_JOB_COMPLETED" || end["data"]?["error"] is not null)
        {
            return new MergeResult(ready, null, $"{EventName(end)}: {end["data"]?["error"]}");
        }

        OnMerged();
        return new MergeResult(ready, completed, null);
    }

    /// <summary>
    /// Starts a job with <paramref name="command"/> (its arguments name the job <paramref name="id"/>)
    /// and waits for it to end, at most <paramref name="timeout"/>; how long that took, or null with
    /// the reason when it failed, was cancelled or ran out of time (then it is cancelled).
    /// </summary>
    public async Task<(TimeSpan? Took, string? Failure)> RunJobAsync(string command, JsonObject arguments, string id, TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        await ExecuteAsync(command, arguments, cancellationToken);
        var end = await NextJobEventAsync(id, End, timeout, cancellationToken);
        if (end is null)
        {
            var abandoned = await AbandonAsync(id, null, timeout, cancellationToken);
            return (null, abandoned.Failure);
        }

        var took = clock.Elapsed;
        return EventName(end) == "BLOCK_JOB_COMPLETED" && end["data"]?["error"] is null
            ? (took, null)
            : (null, $"{EventName(end)}: {end["data"]?["error"]}");
    }

    /// <summary>Stops the server (as <see cref="DisposeAsync"/> does) and returns what it wrote to standard error.</summary>
    public async Task<string> StopAndReadLogAsync()
    {
        await StopAsync();
        return _process is null ? "" : (await _process.OutputAsync()).Stderr;
    }

    /// <summary>Asks the server to quit (QMP quit), then stops it by signal, then by force.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_process is not null)
        {
            await _process.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }

    private async Task StopAsync()
    {
        if (_qmp is not null)
        {
            try
            {
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _qmp.ExecuteAsync("quit", null, limit.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or QmpException)
            {
                // Stopped by signal below.
            }

            await _qmp.DisposeAsync();
            _qmp = null;
        }

        if (_process is not null && !await _process.WaitForExitAsync(TimeSpan.FromSeconds(10)))
        {
            await _process.StopAsync(TimeSpan.FromSeconds(5));
        }
    }

    /// <summary>The server's command line for one drive, "disk", on <see cref="NbdSocket"/> and <see cref="QmpSocket"/>.</summary>
    protected abstract (string Program, IEnumerable<string> Args) CommandLine(DiskImage disk);

    protected abstract JsonObject SnapshotArguments(string overlay);

    protected abstract JsonObject CommitArguments(string jobId);

    protected virtual void OnSnapshot()
    {
    }

    protected virtual void OnMerged()
    {
    }

    private static string? EventName(JsonObject e) => e["event"]?.GetValue<string>();

    /// <summary>One QMP command, bounded; a QMP error becomes an InvalidOperationException naming the server.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject arguments, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(CommandTimeout);
        try
        {
            return await Qmp.ExecuteAsync(command, arguments, limit.Token);
        }
        catch (QmpException e)
        {
            throw new InvalidOperationException($"{Name}: {command} failed: {e.Message}", e);
        }
    }

    /// <summary>The next event of job <paramref name="id"/> among <paramref name="names"/>; null after <paramref name="timeout"/>.</summary>
    private async Task<JsonObject?> NextJobEventAsync(string id, string[] names, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout > TimeSpan.Zero ? timeout : TimeSpan.FromMilliseconds(1));
        try
        {
            while (true)
            {
                var e = await Qmp.Events.ReadAsync(limit.Token);
                if (names.Contains(EventName(e)) && e["data"]?["device"]?.GetValue<string>() == id)
                {
                    return e;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Cancels a merge that ran out of time and waits (bounded) for it to end.</summary>
    private async Task<MergeResult> AbandonAsync(string id, TimeSpan? ready, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await ExecuteAsync("job-cancel", new JsonObject { ["id"] = id }, cancellationToken);
            await NextJobEventAsync(id, End, TimeSpan.FromSeconds(30), cancellationToken);
        }
        catch (InvalidOperationException)
        {
            // The job may have ended meanwhile; the server is stopped after the run anyway.
        }

        return new MergeResult(ready, null, $"did not converge in {timeout.TotalSeconds:0} s");
    }
}
