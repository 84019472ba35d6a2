using Strata.Block.Jobs;

namespace Strata.Block.Tests;

public sealed class JobTests
{
    [Fact]
    public async Task SuccessfulJobRunsCommitAndConcludesWithoutError()
    {
        using var job = new StepJob(steps: 3);
        var seen = Record(job);
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(job.Committed);
        Assert.False(job.Aborted);
        Assert.Null(job.Error);
        Assert.Equal(3, job.CurrentProgress);
        Assert.Equal([JobStatus.Running, JobStatus.Waiting, JobStatus.Pending, JobStatus.Concluded], seen);
    }

    [Fact]
    public async Task FailingJobAbortsAndReportsItsError()
    {
        using var job = new StepJob(steps: 3, failAt: 1);
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(job.Committed);
        Assert.True(job.Aborted);
        Assert.Equal("step 1 failed", job.Error);
    }

    [Fact]
    public async Task PausedJobMakesNoProgressUntilResumed()
    {
        using var job = new StepJob(steps: 1000, stepDelay: TimeSpan.FromMilliseconds(1));
        job.Start();
        job.Pause();
        Assert.Equal(JobStatus.Paused, job.Status);
        await Task.Delay(50);
        long before = job.CurrentProgress;
        await Task.Delay(100);
        Assert.InRange(job.CurrentProgress - before, 0, 1);
        job.Resume();
        Assert.Equal(JobStatus.Running, job.Status);
        job.Cancel();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task CancelledJobAbortsWithoutAnError()
    {
        using var job = new StepJob(steps: 100000, stepDelay: TimeSpan.FromMilliseconds(1));
        job.Start();
        job.Cancel();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(job.Aborted);
        Assert.False(job.Committed);
        Assert.Null(job.Error);
        Assert.Equal(JobStatus.Concluded, job.Status);
    }

    [Fact]
    public async Task ReadyJobWaitsForCompleteBeforeCommitting()
    {
        using var job = new StepJob(steps: 2, waitForComplete: true);
        var ready = new TaskCompletionSource();
        job.StatusChanged += (_, e) =>
        {
            if (e.Status == JobStatus.Ready)
            {
                ready.TrySetResult();
            }
        };
        Assert.Throws<InvalidOperationException>(job.Complete);
        job.Start();
        await ready.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(20);
        Assert.False(job.Committed);
        job.Complete();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(job.Committed);
    }

    [Fact]
    public async Task ACancelThatComesWhileTheJobCommitsIsIgnoredAndTheJobCompletes()
    {
        // As QEMU's job_cancel_async: a job that has finished its work and is committing it finishes
        // the commit; cancelling then would leave it half done.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var job = new StepJob(steps: 2, commitGate: release.Task);
        var seen = Record(job);
        job.Start();
        await job.CommitStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        job.Cancel();
        release.SetResult();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(job.Committed);
        Assert.False(job.Aborted);
        Assert.False(job.Cancelled, "a job that committed reports itself cancelled");
        Assert.Null(job.Error);
        Assert.DoesNotContain(JobStatus.Aborting, seen);
    }

    [Fact]
    public async Task AStepThatFailedBeforeAResumeButReportsAfterItIsRetriedWithoutStoppingTheJobAgain()
    {
        // Two steps run together under policy stop: one fails at once and pauses the job; the other's
        // failure (from the same fault) arrives only after the user repaired the fault and resumed.
        // That late failure must be retried, not pause the job a second time with nobody to resume it.
        using var job = new TwoStepJob();
        int errors = 0;
        job.IoError += (_, _) => Interlocked.Increment(ref errors);
        job.Start();
        await job.FirstFailed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await UntilPausedAsync(job);
        Assert.True(job.IoFailed);

        job.Repaired = true;
        job.ResumedOnce = true;
        job.Resume();
        job.ReleaseLateFailure.SetResult();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Null(job.Error);
        Assert.False(job.IoFailed);
        Assert.Equal(1, Volatile.Read(ref errors));
        Assert.Equal(2, job.Succeeded);
    }

    [Fact]
    public async Task AStepThatFailsAgainAfterTheResumeStopsTheJobAgain()
    {
        // The other side of the rule above: a resume retries, and a fault still there stops the job again.
        using var job = new TwoStepJob();
        var stops = new List<bool>();
        job.IoError += (_, e) =>
        {
            lock (stops)
            {
                stops.Add(e.Stopped);
            }
        };
        job.Start();
        await job.FirstFailed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await UntilPausedAsync(job);
        job.ResumedOnce = true;
        job.Resume();
        job.ReleaseLateFailure.SetResult();
        await job.FailedAgain.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await UntilPausedAsync(job);
        Assert.True(job.IoFailed);

        job.Repaired = true;
        job.Resume();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Null(job.Error);
        Assert.Equal(2, job.Succeeded);
        lock (stops)
        {
            Assert.True(stops.Count >= 2 && stops.TrueForAll(s => s), $"io errors seen: {stops.Count}");
        }
    }

    /// <summary>Waits (bounded) until the job's status is paused: a failed step pauses it just after its error is raised.</summary>
    private static async Task UntilPausedAsync(Job job)
    {
        for (int i = 0; i < 10_000 && job.Status != JobStatus.Paused; i++)
        {
            await Task.Delay(1);
        }

        Assert.Equal(JobStatus.Paused, job.Status);
    }

    private static List<JobStatus> Record(Job job)
    {
        var seen = new List<JobStatus>();
        job.StatusChanged += (_, e) =>
        {
            lock (seen)
            {
                seen.Add(e.Status);
            }
        };
        return seen;
    }

    /// <summary>
    /// Two steps under policy stop against a fault: the first fails at once; the second was in flight
    /// when the fault hit and fails only once released. While not <see cref="Repaired"/>, every other
    /// attempt fails too.
    /// </summary>
    private sealed class TwoStepJob() : Job("job0", "test")
    {
        private int _succeeded;
        private int _failures;
        private int _inFlightStarted;

        public volatile bool Repaired;

        /// <summary>Set by the test once it resumed the job the first time.</summary>
        public volatile bool ResumedOnce;

        public TaskCompletionSource FirstFailed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when an attempt made after the first resume failed.</summary>
        public TaskCompletionSource FailedAgain { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource ReleaseLateFailure { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Succeeded => Volatile.Read(ref _succeeded);

        protected override async Task RunAsync(CancellationToken cancellationToken)
        {
            var first = RunStepAsync(() => AttemptAsync(failAnyway: false), () => true, IoErrorPolicy.Stop, cancellationToken).AsTask();
            var second = RunStepAsync(async () =>
            {
                if (Interlocked.Exchange(ref _inFlightStarted, 1) == 0)
                {
                    await ReleaseLateFailure.Task.WaitAsync(cancellationToken);
                    return await AttemptAsync(failAnyway: true);
                }

                return await AttemptAsync(failAnyway: false);
            }, () => true, IoErrorPolicy.Stop, cancellationToken).AsTask();
            await Task.WhenAll(first, second);
        }

        private async ValueTask<bool> AttemptAsync(bool failAnyway)
        {
            await Task.Yield();
            if (failAnyway || !Repaired)
            {
                if (Interlocked.Increment(ref _failures) == 1)
                {
                    FirstFailed.TrySetResult();
                }
                else if (ResumedOnce && !failAnyway)
                {
                    FailedAgain.TrySetResult();
                }

                throw new BlockException(BlockError.Io, failAnyway ? "failure of a request in flight when the fault hit" : "failure");
            }

            Interlocked.Increment(ref _succeeded);
            return true;
        }
    }

    private sealed class StepJob(int steps, int failAt = -1, TimeSpan stepDelay = default, bool waitForComplete = false, Task? commitGate = null)
        : Job("job0", "test")
    {
        public bool Committed { get; private set; }

        /// <summary>Completes when <see cref="CommitAsync"/> has begun (it then waits for the commit gate, if any).</summary>
        public TaskCompletionSource CommitStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Aborted { get; private set; }

        protected override async Task RunAsync(CancellationToken cancellationToken)
        {
            AddTotal(steps);
            for (int i = 0; i < steps; i++)
            {
                await PausePointAsync(cancellationToken);
                if (i == failAt)
                {
                    throw new InvalidOperationException($"step {i} failed");
                }

                if (stepDelay > TimeSpan.Zero)
                {
                    await Task.Delay(stepDelay, cancellationToken);
                }

                AddProgress(1);
            }

            if (waitForComplete)
            {
                await ReadyAndWaitForCompleteAsync(cancellationToken);
            }
        }

        protected override async Task CommitAsync()
        {
            CommitStarted.TrySetResult();
            if (commitGate is not null)
            {
                await commitGate;
            }

            Committed = true;
        }

        protected override Task AbortAsync()
        {
            Aborted = true;
            return Task.CompletedTask;
        }
    }
}
