using System.Collections.Concurrent;

namespace Strata.Formats.Raw;

/// <summary>
/// Threads for file calls that block: O_DIRECT transfers, which wait for the device, and fdatasync.
/// Like QEMU's thread pool (util/thread-pool.c, up to 64 workers, made when work is waiting), a
/// worker is added whenever more calls are outstanding than there are workers, up to
/// <see cref="MaxThreads"/>.
/// </summary>
/// <remarks>
/// The .NET thread pool is the wrong place for these calls: it keeps about as many threads as cores
/// and adds one only every half second or so while they block, so 32 direct reads in flight ran
/// about three at a time (measured: queue depth 32 at a third of qemu-img's rate; with enough
/// threads, faster than it). Workers stay once made (a sleeping thread costs its stack's address
/// space, little memory) and are background threads, so they never keep a process alive. A
/// caller's continuation runs on the worker that finished its call: one hop fewer on the way back,
/// and nothing that continues after a transfer waits synchronously for another one.
/// </remarks>
internal sealed class BlockingIoThreads
{
    /// <summary>QEMU's default for its pool (thread-pool-max).</summary>
    public const int MaxThreads = 64;

    // Protects _threads while a worker is added; the queue and the counter need no lock.
    private readonly Lock _lock = new();
    private readonly BlockingCollection<(Action Work, TaskCompletionSource Done)> _queue = [];
    private int _outstanding;
    private int _threads;

    private BlockingIoThreads()
    {
    }

    /// <summary>
    /// The one pool of the process, as QEMU has one per event loop: every file shares it, so a
    /// host's worth of disks cannot start a thread army each.
    /// </summary>
    public static BlockingIoThreads Shared { get; } = new();

    /// <summary>Runs <paramref name="work"/> on a worker; the task ends with it, or with its exception.</summary>
    public Task RunAsync(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var done = new TaskCompletionSource();
        int outstanding = Interlocked.Increment(ref _outstanding);
        if (outstanding > Volatile.Read(ref _threads))
        {
            AddWorker(outstanding);
        }

        _queue.Add((work, done));
        return done.Task;
    }

    private void AddWorker(int outstanding)
    {
        lock (_lock)
        {
            if (_threads >= Math.Min(outstanding, MaxThreads))
            {
                return;
            }

            _threads++;
        }

        new Thread(Work) { IsBackground = true, Name = "strata blocking io" }.Start();
    }

    private void Work()
    {
        foreach (var (work, done) in _queue.GetConsumingEnumerable())
        {
            Exception? failure = null;
            try
            {
                work();
            }
            catch (Exception e)
            {
                failure = e;
            }

            Interlocked.Decrement(ref _outstanding);
            if (failure is null)
            {
                done.SetResult();
            }
            else
            {
                done.SetException(failure);
            }
        }
    }
}
