using System.Diagnostics;
using System.Net.Sockets;

namespace Strata.Nbd.Transport;

/// <summary>
/// Adaptive busy-polling of a socket before a blocking receive: QEMU's IOThread polling
/// (<c>poll-max-ns</c>) for one connection's thread.
/// </summary>
/// <remarks>
/// A client at queue depth 1 sends its next request a few tens of microseconds after it reads our
/// reply. A thread that blocks meanwhile lets its CPU go idle, and on a virtual machine whose idle
/// vCPUs halt, waking that CPU again costs more than serving the request (docs/nbd.md, "Queue depth
/// 1"). So the receive side first checks the socket for up to a window, without blocking. The window
/// adapts as QEMU's does: after a wait shorter than the maximum it grows (4 µs, then doubling up to
/// the maximum); after a wait longer than the maximum it drops to zero. An idle or slow client, or one
/// behind a slow store, so costs one clock read per receive; only a client that keeps answering within
/// the maximum is polled for. Between two checks the thread yields the CPU to any thread ready to run
/// there, so polling uses only time the CPU would have spent idle, not time a job or another request
/// needs. At most one connection fewer than the machine has CPUs polls at a time, so polling never
/// holds every CPU (and never happens on one CPU).
/// </remarks>
internal sealed class ReceivePoll
{
    private static readonly long FirstWindow = Stopwatch.Frequency * 4 / 1_000_000;
    private static readonly int MaxPollers = Environment.ProcessorCount - 1;
    private static int s_pollers;

    private readonly long _max;
    private long _window;

    /// <param name="max">The longest window; zero turns polling off.</param>
    public ReceivePoll(TimeSpan max) => _max = max <= TimeSpan.Zero ? 0 : (long)(max.TotalSeconds * Stopwatch.Frequency);

    /// <summary>The current window in stopwatch ticks (zero: the next receive blocks at once).</summary>
    public long Window => _window;

    /// <summary>Whether anything is polled for at all (a maximum above zero and more than one CPU).</summary>
    public bool Enabled => _max > 0 && MaxPollers > 0;

    /// <summary>
    /// Checks the socket for received bytes until they come or the window ends, from
    /// <paramref name="start"/> (a <see cref="Stopwatch"/> timestamp); true when bytes are waiting.
    /// </summary>
    public bool Poll(Socket socket, long start)
    {
        if (_window == 0)
        {
            return false;
        }

        if (Interlocked.Increment(ref s_pollers) > MaxPollers)
        {
            Interlocked.Decrement(ref s_pollers);
            return false;
        }

        try
        {
            long end = start + _window;
            do
            {
                if (socket.Available > 0)
                {
                    return true;
                }

                // Not a busy spin: a thread that is ready to run on this CPU (a merge's copier, a
                // request continuing on the thread pool) runs first, so polling takes only time
                // the CPU would have spent idle.
                Thread.Yield();
            }
            while (Stopwatch.GetTimestamp() < end);

            return false;
        }
        finally
        {
            Interlocked.Decrement(ref s_pollers);
        }
    }

    /// <summary>Adapts the window to a wait of <paramref name="waited"/> ticks that polling did not cover.</summary>
    public void Waited(long waited)
    {
        if (waited > _max)
        {
            _window = 0;
        }
        else if (_window < _max)
        {
            _window = Math.Min(_max, _window == 0 ? FirstWindow : _window * 2);
        }
    }
}
