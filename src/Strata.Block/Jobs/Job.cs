namespace Strata.Block.Jobs;

/// <summary>
/// A long operation (merge, backup) that runs in the background with a lifecycle QEMU users know:
/// created → running ⇄ paused → (ready →) pending → concluded, or → aborting → concluded.
/// </summary>
/// <remarks>
/// A job finishes in phases, like QEMU's: <see cref="RunAsync"/> does the work and may report ready;
/// then exactly one of <see cref="CommitAsync"/> (success: make the result visible) or
/// <see cref="AbortAsync"/> (failure or cancel: leave everything as it was) runs. The work loop
/// calls <see cref="PausePointAsync"/> between units of work, which is where pause, cancel and
/// completion take effect. Once the work is done a cancel changes nothing: a job that is committing
/// finishes its commit (as QEMU's job_cancel_async ignores a cancel of a job that is already done),
/// and one that is aborting finishes aborting.
/// </remarks>
public abstract class Job : IDisposable
{
    // Protects _status, _pauseRequests, _resume, _resumes, _cancelRequested, _finishing, the setting of
    // _ioFailed and the transitions between them.
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _cancel = new();
    private readonly TaskCompletionSource _completeRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _concluded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private JobStatus _status = JobStatus.Created;
    private int _pauseRequests;
    private TaskCompletionSource _resume = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _current;
    private long _total;
    private bool _wasReady;
    private bool _ioFailed;

    // Counts the resumes that ended a pause: a step that began under an older count may report a
    // failure from before the last resume.
    private int _resumes;
    private bool _cancelRequested;

    // Set when the work is over and the job commits or aborts: from then on a cancel changes nothing.
    private bool _finishing;

    protected Job(string id, string type)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        Id = id;
        Type = type;
    }

    public string Id { get; }

    /// <summary>"commit", "backup", … (query-jobs "type").</summary>
    public string Type { get; }

    public JobStatus Status
    {
        get
        {
            lock (_lock)
            {
                return _status;
            }
        }
    }

    /// <summary>Work done so far, in the same unit as <see cref="TotalProgress"/> (bytes).</summary>
    public long CurrentProgress => Interlocked.Read(ref _current);

    /// <summary>The work known so far; may grow while the guest writes.</summary>
    public long TotalProgress => Interlocked.Read(ref _total);

    /// <summary>Why the job failed; null when it succeeded or is still running.</summary>
    public string? Error { get; private set; }

    /// <summary>True when a cancel took effect: the job stopped its work and aborts (or aborted).</summary>
    public bool Cancelled
    {
        get
        {
            lock (_lock)
            {
                return _cancelRequested;
            }
        }
    }

    /// <summary>Completes when the job is concluded (never faults: see <see cref="Error"/>).</summary>
    public Task Completion => _concluded.Task;

    public event EventHandler<JobStatusChangedEventArgs>? StatusChanged;

    /// <summary>Raised when the job's own I/O fails, before it stops or fails (see <see cref="IoErrorPolicy"/>).</summary>
    public event EventHandler<JobIoErrorEventArgs>? IoError;

    /// <summary>True while the job is paused because its I/O failed (policy stop), until it is resumed.</summary>
    public bool IoFailed => Volatile.Read(ref _ioFailed);

    public void Start()
    {
        lock (_lock)
        {
            if (_status != JobStatus.Created)
            {
                throw new InvalidOperationException($"job '{Id}' has already started");
            }
        }

        SetStatus(JobStatus.Running, from: JobStatus.Created);
        _ = Task.Run(LifecycleAsync);
    }

    /// <summary>Asks the job to stop at its next pause point. Pauses nest.</summary>
    public void Pause()
    {
        bool changed;
        lock (_lock)
        {
            ThrowIfConcluded();
            changed = PauseLocked();
        }

        if (changed)
        {
            Raise(JobStatus.Paused);
        }
    }

    public void Resume()
    {
        JobStatus? changed = null;
        TaskCompletionSource? resume = null;
        lock (_lock)
        {
            ThrowIfConcluded();
            if (_pauseRequests == 0)
            {
                throw new InvalidOperationException($"job '{Id}' is not paused");
            }

            if (--_pauseRequests == 0)
            {
                _resumes++;
                resume = _resume;
                if (_status == JobStatus.Paused)
                {
                    _status = _wasReady ? JobStatus.Ready : JobStatus.Running;
                    changed = _status;
                }
            }
        }

        resume?.TrySetResult();
        if (changed is { } s)
        {
            Raise(s);
        }
    }

    /// <summary>
    /// Stops the job; what it did is undone and the data stays where it was. A job that has finished
    /// its work and is committing (or aborting) goes on to its end: the cancel changes nothing.
    /// </summary>
    public void Cancel()
    {
        TaskCompletionSource resume;
        lock (_lock)
        {
            ThrowIfConcluded();
            if (_finishing)
            {
                return;
            }

            _cancelRequested = true;
            resume = _resume;
        }

        _cancel.Cancel();
        resume.TrySetResult();
    }

    /// <summary>Tells a ready job to finish (QEMU's job-complete).</summary>
    public void Complete()
    {
        lock (_lock)
        {
            if (_status != JobStatus.Ready)
            {
                throw new InvalidOperationException($"job '{Id}' is not ready (status: {_status.ToString().ToLowerInvariant()})");
            }
        }

        _completeRequested.TrySetResult();
    }

    /// <summary>Releases the job's resources; call after it concluded (dismiss).</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing && Completion.IsCompleted)
        {
            _cancel.Dispose();
        }
    }

    /// <summary>The work. Throwing fails the job; cancellation is seen through the token.</summary>
    protected abstract Task RunAsync(CancellationToken cancellationToken);

    /// <summary>Makes the result visible (for a merge: switch the drive). Runs once, after <see cref="RunAsync"/> succeeded.</summary>
    protected virtual Task CommitAsync() => Task.CompletedTask;

    /// <summary>Leaves everything as it was before the job. Runs once, after failure or cancel.</summary>
    protected virtual Task AbortAsync() => Task.CompletedTask;

    /// <summary>Where pause and cancel take effect; call between units of work.</summary>
    protected async ValueTask PausePointAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task resume;
            lock (_lock)
            {
                if (_pauseRequests == 0)
                {
                    break;
                }

                resume = _resume.Task;
            }

            await resume.WaitAsync(cancellationToken);
        }

        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>Reports that the job has caught up, then waits until <see cref="Complete"/> (or cancel).</summary>
    protected async Task ReadyAndWaitForCompleteAsync(CancellationToken cancellationToken)
    {
        SetStatus(JobStatus.Ready, from: JobStatus.Running);
        lock (_lock)
        {
            _wasReady = true;
        }

        await _completeRequested.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Runs one step of the job under <paramref name="policy"/>: when its I/O fails, raises
    /// <see cref="IoError"/>, then either rethrows (the job fails) or pauses the job and runs the step
    /// again once it is resumed. <paramref name="failedWriting"/> says, after a failure, whether the
    /// step was writing.
    /// </summary>
    protected ValueTask<T> RunStepAsync<T>(Func<ValueTask<T>> step, Func<bool> failedWriting, IoErrorPolicy policy,
        CancellationToken cancellationToken) => RunStepAsync(step, failedWriting, _ => policy, cancellationToken);

    /// <summary>
    /// As <see cref="RunStepAsync{T}(Func{ValueTask{T}}, Func{bool}, IoErrorPolicy, CancellationToken)"/>,
    /// with a policy for failed reads and another for failed writes (a backup's on-source-error and
    /// on-target-error): <paramref name="policyFor"/> hears whether the step was writing.
    /// </summary>
    protected async ValueTask<T> RunStepAsync<T>(Func<ValueTask<T>> step, Func<bool> failedWriting, Func<bool, IoErrorPolicy> policyFor,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(policyFor);
        ArgumentNullException.ThrowIfNull(failedWriting);
        while (true)
        {
            int resumes = Volatile.Read(ref _resumes);
            try
            {
                return await step();
            }
            catch (BlockException e) when (!cancellationToken.IsCancellationRequested)
            {
                bool writing = failedWriting();
                var policy = policyFor(writing);
                bool stop = policy.Stops(e.Error == BlockError.NoSpace);
                if (!stop)
                {
                    IoError?.Invoke(this, new JobIoErrorEventArgs(writing, stop, e.Message));
                    throw;
                }

                if (!StopForFailure(resumes, new JobIoErrorEventArgs(writing, stop, e.Message)))
                {
                    continue;
                }
            }

            try
            {
                await PausePointAsync(cancellationToken);
            }
            finally
            {
                Volatile.Write(ref _ioFailed, false);
            }
        }
    }

    /// <summary>
    /// Pauses the job for a step that failed under policy stop, unless the job was resumed since the
    /// step began: the failure is then from before that resume (another step's failure paused the job
    /// meanwhile and the user has handled the fault), and the step is retried at once rather than
    /// stopping the job a second time; if the fault is still there, it fails again and stops.
    /// Several steps failing together pause the job once, and one resume retries them all. The
    /// check and the pause are one step under the lock, so a resume cannot fall between them.
    /// </summary>
    /// <returns>False when the step should run again now.</returns>
    private bool StopForFailure(int resumesWhenStarted, JobIoErrorEventArgs failure)
    {
        bool changed = false;
        lock (_lock)
        {
            if (_resumes != resumesWhenStarted)
            {
                return false;
            }

            if (!_ioFailed)
            {
                Volatile.Write(ref _ioFailed, true);
                changed = PauseLocked();
            }
        }

        IoError?.Invoke(this, failure);
        if (changed)
        {
            Raise(JobStatus.Paused);
        }

        return true;
    }

    /// <summary>Counts one more pause request; true when the job's status became paused.</summary>
    private bool PauseLocked()
    {
        if (_pauseRequests++ != 0)
        {
            return false;
        }

        _resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_status is JobStatus.Running or JobStatus.Ready)
        {
            _status = JobStatus.Paused;
            return true;
        }

        return false;
    }

    /// <summary>True once <see cref="Complete"/> was called.</summary>
    protected bool CompleteRequested => _completeRequested.Task.IsCompleted;

    protected void AddProgress(long amount) => Interlocked.Add(ref _current, amount);

    protected void AddTotal(long amount) => Interlocked.Add(ref _total, amount);

    private async Task LifecycleAsync()
    {
        Exception? failure = null;
        try
        {
            await RunAsync(_cancel.Token);
        }
        catch (Exception e)
        {
            failure = e;
        }

        lock (_lock)
        {
            // A cancel that came before this point wins even over finished work; after it, none does.
            if (failure is null && _cancelRequested)
            {
                failure = new OperationCanceledException(_cancel.Token);
            }

            _finishing = true;
        }

        if (failure is null)
        {
            SetStatus(JobStatus.Waiting, from: null);
            SetStatus(JobStatus.Pending, from: null);
            try
            {
                await CommitAsync();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }

        if (failure is not null)
        {
            if (failure is not OperationCanceledException || !Cancelled)
            {
                Error = failure.Message;
            }

            SetStatus(JobStatus.Aborting, from: null);
            try
            {
                await AbortAsync();
            }
            catch (Exception e)
            {
                Error ??= e.Message;
            }
        }

        SetStatus(JobStatus.Concluded, from: null);
        _concluded.TrySetResult();
    }

    private void SetStatus(JobStatus status, JobStatus? from)
    {
        lock (_lock)
        {
            if (from is { } expected && _status != expected && _status != JobStatus.Paused)
            {
                return;
            }

            if (_pauseRequests > 0 && status is JobStatus.Ready or JobStatus.Running)
            {
                // Paused wins until resumed; Resume restores the right state.
                if (_status == JobStatus.Paused)
                {
                    return;
                }

                status = JobStatus.Paused;
            }

            _status = status;
        }

        Raise(status);
    }

    private void Raise(JobStatus status) => StatusChanged?.Invoke(this, new JobStatusChangedEventArgs(status));

    private void ThrowIfConcluded()
    {
        if (_status == JobStatus.Concluded)
        {
            throw new InvalidOperationException($"job '{Id}' has concluded");
        }
    }
}
