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
