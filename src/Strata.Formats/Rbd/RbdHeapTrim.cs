using System.Runtime.InteropServices;

namespace Strata.Formats.Rbd;

/// <summary>
/// Gives the C heap's free memory back to the system once a second while RBD requests complete
/// (docs/benchmarks/rbd.md, "Memory"). librbd copies every write while its cache is on, and its
/// threads allocate each read's data: in glibc's malloc those bytes come from the arena of the
/// thread that allocates them, and Strata starts librbd's requests on whichever thread-pool thread
/// runs the request, so over a load they spread across up to eight arenas per core. A free chunk
/// below a live one stays resident, and each arena keeps up to its trim threshold (which glibc
/// raises to twice the largest freed mmap'd block) on top: without a trim the daemon keeps the
/// high-water mark of every arena it ever wrote through.
/// </summary>
/// <remarks>
/// QEMU does the same from its RCU thread (util/rcu.c, <c>malloc_trim(4 MiB)</c> whenever its
/// queue runs empty); there every librbd request starts on one thread and lands in one arena, so
/// it needs it less. malloc_trim(3) walks every arena under its lock and madvises whole free pages
/// away; it runs once a second at most, and only after a second in which some request completed,
/// so an idle daemon does not trim. It cannot shrink the top of a thread's arena (glibc does that
/// on a free). Counted users (each open cluster connection) start and stop the timer.
/// </remarks>
internal static partial class RbdHeapTrim
{
    /// <summary>Bytes left at the top of the main heap for the next allocations (QEMU's pad).</summary>
    private const nuint Pad = 4 << 20;

    private static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    // Protects _users and _timer.
    private static readonly Lock Gate = new();
    private static int _users;
    private static Timer? _timer;

    // Requests completed so far (written by librbd's callback threads), and as of the last tick.
    private static long _completed;
    private static long _trimmedAt;

    /// <summary>One more cluster connection whose requests count: the first starts the timer.</summary>
    public static void Retain()
    {
        lock (Gate)
        {
            if (_users++ == 0)
            {
                _timer = new Timer(_ => Tick(), null, Period, Period);
            }
        }
    }

    /// <summary>A cluster connection shut down: the last stops the timer.</summary>
    public static void Release()
    {
        lock (Gate)
        {
            if (--_users == 0)
            {
                _timer!.Dispose();
                _timer = null;
            }
        }
    }

    /// <summary>A request completed (called on librbd's callback thread; cheap).</summary>
    public static void Completed() => Interlocked.Increment(ref _completed);

    private static void Tick()
    {
        long completed = Volatile.Read(ref _completed);
        if (completed == _trimmedAt)
        {
            return;
        }

        _trimmedAt = completed;
        Trim();
    }

    /// <summary>malloc_trim(3): frees what the heap can give back; a C library without it (musl) keeps its memory.</summary>
    public static void Trim()
    {
        try
        {
            _ = MallocTrim(Pad);
        }
        catch (EntryPointNotFoundException)
        {
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
