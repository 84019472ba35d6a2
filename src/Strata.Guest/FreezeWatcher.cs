using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace Strata.Guest;

/// <summary>
/// The watch process's work (<c>strata guest-watch</c>): keeps the set of armed guest sockets from
/// the daemon's messages (<see cref="FreezeWatch"/>) and thaws a guest in two cases. When a socket's
/// deadline passes with no disarm, the daemon is alive but not doing its job (stopped, deadlocked):
/// the watch thaws on the copy of the daemon's connection it was given, which the agent is serving,
/// and keeps the socket armed (a later thaw by the daemon finds nothing frozen, which is harmless).
/// At end of file the daemon is gone: every socket still armed is thawed, on that copy or else on
/// a new connection, retried for <see cref="GiveUpAfter"/> while nothing answers (a VM being
/// restarted). An empty set at end of file is a clean stop.
/// </summary>
public sealed class FreezeWatcher(TextWriter log)
{
    public TimeSpan GiveUpAfter { get; init; } = TimeSpan.FromSeconds(60);

    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    public GuestAgentOptions Agent { get; init; } = new();

    /// <summary>Reads the link to its end, thawing what outlives its deadline, then thaws what is armed; the exit status (0: nothing left frozen by us).</summary>
    public async Task<int> RunAsync(SafeSocketHandle link, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(link);
        var messages = Channel.CreateUnbounded<WatchMessage>();
        var reader = Task.Factory.StartNew(() => ReadLink(link, messages.Writer), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var armed = new Dictionary<string, WatchedSocket>(StringComparer.Ordinal);
        try
        {
            while (true)
            {
                var due = armed.Values.Where(a => a.Deadline is not null).MinBy(a => a.Deadline);
                var wait = due is null ? Timeout.InfiniteTimeSpan
                    : TimeSpan.FromTicks(Math.Min(TimeSpan.FromHours(1).Ticks, -Stopwatch.GetElapsedTime(due.Deadline!.Value).Ticks));
                if (due is not null && wait <= TimeSpan.Zero)
                {
                    await ThawOnDeadlineAsync(due, cancellationToken);
                    continue;
                }

                using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timer.CancelAfter(wait);
                bool more;
                try
                {
                    more = await messages.Reader.WaitToReadAsync(timer.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    continue;
                }

                if (!more)
                {
                    break;
                }

                while (messages.Reader.TryRead(out var message))
                {
                    Apply(message, armed);
                }
            }

            int failed = 0;
            foreach (var socket in armed.Values)
            {
                log.WriteLine($"strata guest-watch: the daemon ended with {socket.Path} frozen; thawing it");
                if (!await ThawWithRetriesAsync(socket, cancellationToken))
                {
                    failed++;
                }
            }

            return failed == 0 ? 0 : 1;
        }
        finally
        {
            foreach (var socket in armed.Values)
            {
                socket.Connection?.Dispose();
            }

            await reader;
        }
    }

    private static void Apply(WatchMessage message, Dictionary<string, WatchedSocket> armed)
    {
        switch (message.Kind)
        {
            case "arm":
                if (armed.Remove(message.Path, out var old))
                {
                    old.Connection?.Dispose();
                }

                armed[message.Path] = new WatchedSocket(message.Path) { Connection = message.Connection, Deadline = message.DeadlineOrNull };
                break;
            case "lease" when armed.TryGetValue(message.Path, out var socket):
                socket.Deadline = message.DeadlineOrNull;
                socket.GiveUpAt = null;
                break;
            case "disarm" when armed.Remove(message.Path, out var done):
                done.Connection?.Dispose();
                break;
            default:
                message.Connection?.Dispose();
                break;
        }
    }

    /// <summary>
    /// The daemon let a freeze run past its lease and the grace: it is alive (the link is open) but
    /// not acting. Thaw, retrying every <see cref="RetryDelay"/> for <see cref="GiveUpAfter"/>.
    /// </summary>
    private async Task ThawOnDeadlineAsync(WatchedSocket socket, CancellationToken cancellationToken)
    {
        socket.GiveUpAt ??= Stopwatch.GetTimestamp() + (long)(GiveUpAfter.TotalSeconds * Stopwatch.Frequency);
        log.WriteLine($"strata guest-watch: {socket.Path} is still frozen past its lease and the daemon has not thawed it; thawing it");
        string? problem = await ThawOnceAsync(socket, cancellationToken);
        if (problem is null)
        {
            socket.Deadline = null;
            socket.GiveUpAt = null;
        }
        else if (Stopwatch.GetTimestamp() >= socket.GiveUpAt)
        {
            log.WriteLine($"strata guest-watch: {socket.Path}: could not thaw within {GiveUpAfter.TotalSeconds:0} s: {problem}");
            socket.Deadline = null;
        }
        else
        {
            socket.Deadline = Stopwatch.GetTimestamp() + (long)(RetryDelay.TotalSeconds * Stopwatch.Frequency);
        }
    }

    private async Task<bool> ThawWithRetriesAsync(WatchedSocket socket, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            string? problem = await ThawOnceAsync(socket, cancellationToken);
            if (problem is null)
            {
                return true;
            }

            if (clock.Elapsed >= GiveUpAfter)
            {
                log.WriteLine($"strata guest-watch: {socket.Path}: could not thaw within {GiveUpAfter.TotalSeconds:0} s: {problem}");
                return false;
            }

            await Task.Delay(RetryDelay, cancellationToken);
        }
    }

    /// <summary>
    /// One thaw: on the daemon's connection when the watch has a copy of it (used once: the copy is
    /// closed after, so the watch never keeps the agent's only client slot), else on a new one.
    /// Returns the problem, or null.
    /// </summary>
    private async Task<string?> ThawOnceAsync(WatchedSocket socket, CancellationToken cancellationToken)
    {
        string? problem = null;
        if (socket.Connection is { } connection)
        {
            socket.Connection = null;
            await using var shared = GuestAgentClient.Over(new Socket(connection), socket.Path, Agent);
            problem = await ThawOnAsync(shared, socket.Path, "on the daemon's connection", cancellationToken);
            if (problem is null)
            {
                return null;
            }
        }

        try
        {
            await using var client = await GuestAgentClient.ConnectAsync(socket.Path, Agent, cancellationToken);
            return await ThawOnAsync(client, socket.Path, "on a new connection", cancellationToken);
        }
        catch (GuestAgentException e)
        {
            return problem is null ? e.Message : $"{problem}; {e.Message}";
        }
    }

    private async Task<string?> ThawOnAsync(GuestAgentClient client, string path, string how, CancellationToken cancellationToken)
    {
        try
        {
            int count = await client.ThawAsync(cancellationToken);
            log.WriteLine($"strata guest-watch: {path}: {count} file system{(count == 1 ? "" : "s")} thawed {how}");
            return null;
        }
        catch (GuestAgentException e)
        {
            return e.Message;
        }
    }

    /// <summary>The link's reader, on its own thread (recvmsg blocks): lines with the descriptors that came with them, until end of file.</summary>
    private void ReadLink(SafeSocketHandle link, ChannelWriter<WatchMessage> messages)
    {
        var descriptors = new List<SafeSocketHandle>();
        var pending = new List<byte>();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                int n = UnixRights.Receive(link, buffer, descriptors);
                if (n == 0)
                {
                    return;
                }

                for (int i = 0; i < n; i++)
                {
                    if (buffer[i] != '\n')
                    {
                        pending.Add(buffer[i]);
                        continue;
                    }

                    if (WatchMessage.Parse(Encoding.UTF8.GetString([.. pending]), descriptors) is { } message)
                    {
                        messages.TryWrite(message);
                    }

                    pending.Clear();
                }
            }
        }
        catch (IOException e)
        {
            log.WriteLine($"strata guest-watch: reading the daemon's link failed ({e.Message}); taking it as the daemon's end");
        }
        finally
        {
            foreach (var unused in descriptors)
            {
                unused.Dispose();
            }

            messages.Complete();
        }
    }
}
