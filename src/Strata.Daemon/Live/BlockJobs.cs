using System.Text.Json;
using Strata.Block.Jobs;
using Strata.Daemon.Control;

namespace Strata.Daemon.Live;

/// <summary>
/// The daemon's jobs by id, and the events they raise (qapi/job.json JOB_STATUS_CHANGE,
/// qapi/block-core.json BLOCK_JOB_READY, BLOCK_JOB_COMPLETED, BLOCK_JOB_CANCELLED, BLOCK_JOB_ERROR).
/// </summary>
public sealed class BlockJobs(Action<QmpEvent> emit)
{
    // Protects _jobs.
    private readonly Lock _lock = new();
    private readonly Dictionary<string, BlockJobEntry> _jobs = [];

    public IReadOnlyList<BlockJobEntry> All
    {
        get
        {
            lock (_lock)
            {
                return [.. _jobs.Values];
            }
        }
    }

    public BlockJobEntry? Find(string id)
    {
        lock (_lock)
        {
            return _jobs.GetValueOrDefault(id);
        }
    }

    public void Add(BlockJobEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        lock (_lock)
        {
            if (_jobs.ContainsKey(entry.Job.Id))
            {
                throw new ArgumentException($"Job ID '{entry.Job.Id}' already in use");
            }

            _jobs.Add(entry.Job.Id, entry);
        }

        // As in QEMU, a job's events begin with "created" (the job has not started yet).
        emit(StatusEvent(entry.Job.Id, StatusName(entry.Job.Status)));
        entry.Job.StatusChanged += (_, e) => OnStatusChanged(entry, e.Status);
        entry.Job.IoError += (_, e) => emit(new QmpEvent("BLOCK_JOB_ERROR", w =>
        {
            w.WriteStartObject();
            w.WriteString("device", entry.Job.Id);
            w.WriteString("operation", e.Write ? "write" : "read");
            w.WriteString("action", e.Stopped ? "stop" : "report");
            w.WriteEndObject();
        }));
    }

    /// <summary>
    /// Cancels every job that has not concluded and waits for them, as QEMU's job_cancel_sync_all does
    /// when it stops: a merge still copying, or READY, is cancelled without switching the drive (its
    /// chain stays valid: the base only received data the layers above it shadow); a merge already
    /// committing finishes its commit. Returns the jobs still not concluded at <paramref name="giveUp"/>.
    /// </summary>
    public async Task<IReadOnlyList<BlockJobEntry>> CancelAllAsync(CancellationToken giveUp)
    {
        var running = All.Where(e => !e.Job.Completion.IsCompleted).ToList();
        foreach (var entry in running)
        {
            try
            {
                entry.Job.Cancel();
            }
            catch (InvalidOperationException)
            {
                // It concluded meanwhile.
            }
        }

        try
        {
            await Task.WhenAll(running.Select(e => e.Job.Completion)).WaitAsync(giveUp);
        }
        catch (OperationCanceledException)
        {
            // Reported below: the caller closes what it can without them.
        }

        return [.. running.Where(e => !e.Job.Completion.IsCompleted)];
    }

    /// <summary>Removes a concluded job (job-dismiss).</summary>
    public bool Dismiss(string id)
    {
        BlockJobEntry? entry;
        lock (_lock)
        {
            if (!_jobs.TryGetValue(id, out entry) || entry.Job.Status != JobStatus.Concluded)
            {
                return false;
            }

            _jobs.Remove(id);
        }

        emit(StatusEvent(id, "null"));
        entry.Job.Dispose();
        return true;
    }

    public static string StatusName(JobStatus status) => status.ToString().ToLowerInvariant();

    private void OnStatusChanged(BlockJobEntry entry, JobStatus status)
    {
        var job = entry.Job;
        emit(StatusEvent(job.Id, StatusName(status)));
        if (status == JobStatus.Ready)
        {
            emit(new QmpEvent("BLOCK_JOB_READY", w => WriteBlockJob(w, entry, error: null)));
        }
        else if (status == JobStatus.Concluded)
        {
            bool cancelled = job.Cancelled && job.Error is null;
            emit(new QmpEvent(cancelled ? "BLOCK_JOB_CANCELLED" : "BLOCK_JOB_COMPLETED", w => WriteBlockJob(w, entry, job.Error)));
            if (entry.AutoDismiss)
            {
                Dismiss(job.Id);
            }
        }
    }

    private static QmpEvent StatusEvent(string id, string status) => new("JOB_STATUS_CHANGE", w =>
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("status", status);
        w.WriteEndObject();
    });

    /// <summary>The fields BLOCK_JOB_* events and query-block-jobs share (qapi/block-core.json BlockJobInfo).</summary>
    public static void WriteBlockJobFields(Utf8JsonWriter w, BlockJobEntry entry)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(entry);
        Job job = entry.Job;
        w.WriteString("type", job.Type);
        w.WriteString("device", job.Id);
        w.WriteNumber("len", job.TotalProgress);
        w.WriteNumber("offset", job.CurrentProgress);
        w.WriteNumber("speed", entry.Speed);
    }

    private static void WriteBlockJob(Utf8JsonWriter w, BlockJobEntry entry, string? error)
    {
        w.WriteStartObject();
        WriteBlockJobFields(w, entry);
        if (error is not null)
        {
            w.WriteString("error", error);
        }

        w.WriteEndObject();
    }
}
