namespace Strata.Nbd.Server;

/// <summary>
/// The right to read the next request from a connection's socket, when several threads of the
/// connection take turns (<see cref="NbdServerOptions.ReceiveThreads"/>): the holder reads one request,
/// passes the role on, then runs that request and sends its reply while another thread reads.
/// nbdkit's "parallel" thread model works this way (server/protocol.c holds a read lock across one
/// request's receive). Once receiving is over, no thread gets the role again.
/// </summary>
/// <remarks>
/// A thread waiting for the role sleeps (Monitor.Wait: no spinning), and passing the role wakes one
/// waiter, so a turn costs one wake-up when a thread waits and nothing when none does.
/// </remarks>
internal sealed class ReceiveRole
{
    // Protects _held and _over; threads waiting for the role sleep on it.
    private readonly object _lock = new();
    private bool _held;
    private bool _over;

    /// <summary>Waits for the role and takes it; false once receiving is over (the caller stops).</summary>
    public bool Take()
    {
        lock (_lock)
        {
            while (_held && !_over)
            {
                Monitor.Wait(_lock);
            }

            if (_over)
            {
                return false;
            }

            _held = true;
            return true;
        }
    }

    /// <summary>Gives the role up after one request was read; the next waiting thread takes it.</summary>
    public void Pass()
    {
        lock (_lock)
        {
            _held = false;
            Monitor.Pulse(_lock);
        }
    }

    /// <summary>Gives the role up for good: every waiting thread and every later <see cref="Take"/> learns that receiving is over.</summary>
    public void End()
    {
        lock (_lock)
        {
            _over = true;
            _held = false;
            Monitor.PulseAll(_lock);
        }
    }
}
