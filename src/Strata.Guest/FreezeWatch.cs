using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Strata.Guest;

/// <summary>
/// The daemon's end of the freeze watch: a small process (<c>strata guest-watch</c>, see
/// <see cref="FreezeWatcher"/>) started at the first freeze and kept, linked to this process by a
/// unix socket pair whose other end it inherits (its number follows <c>--fd</c>). Each message is
/// one line: <c>arm MS fd|- PATH</c> before a freeze is sent to the agent at PATH, with a copy of
/// the daemon's connection to it attached (SCM_RIGHTS) when the line says <c>fd</c>; <c>lease MS
/// PATH</c> once the freeze was acknowledged; <c>disarm PATH</c> after its thaw was acknowledged.
/// MS is how long from now the watch waits for the disarm before it thaws by itself.
/// <para>
/// This end of the link lives only here (close-on-exec), so when this process ends, however it
/// ends, SIGKILL included, the watch reads end of file and thaws every socket still armed. A watch
/// that died is started again, and told every armed socket, before the next message.
/// </para>
/// </summary>
public sealed class FreezeWatch(string fileName, IReadOnlyList<string> arguments) : IFreezeWatch, IDisposable
{
    // Protects _process, _link and _armed.
    private readonly Lock _lock = new();
    private Process? _process;
    private SafeSocketHandle? _link;
    private readonly List<ArmedSocket> _armed = [];

    public void Arm(string socketPath, SafeHandle? connection, TimeSpan thawAfter)
    {
        ArgumentNullException.ThrowIfNull(socketPath);
        if (socketPath.Contains('\n', StringComparison.Ordinal))
        {
            throw new IOException("a guest socket path with a newline cannot be watched");
        }

        lock (_lock)
        {
            // Sent before it joins the armed list: a watch started by this send is told the list
            // first, and must not hear this socket twice.
            long deadline = Stopwatch.GetTimestamp() + (long)(thawAfter.TotalSeconds * Stopwatch.Frequency);
            Send(ArmLine(socketPath, connection is not null, thawAfter), connection);
            _armed.RemoveAll(a => a.Path == socketPath);
            _armed.Add(new ArmedSocket(socketPath, connection, deadline));
        }
    }

    public void Lease(string socketPath, TimeSpan thawAfter)
    {
        lock (_lock)
        {
            int index = _armed.FindIndex(a => a.Path == socketPath);
            if (index < 0)
            {
                return;
            }

            _armed[index] = _armed[index] with { Deadline = Stopwatch.GetTimestamp() + (long)(thawAfter.TotalSeconds * Stopwatch.Frequency) };
            Send($"lease {Milliseconds(thawAfter)} {socketPath}", null);
        }
    }

    public void Disarm(string socketPath)
    {
        lock (_lock)
        {
            if (_armed.RemoveAll(a => a.Path == socketPath) == 0)
            {
                return;
            }

            try
            {
                Send($"disarm {socketPath}", null);
            }
            catch (IOException)
            {
                // A watch that cannot be told has died; the next Arm starts one that knows only what is armed.
            }
        }
    }

    /// <summary>Closes the link: the watch thaws whatever is still armed (nothing, after a clean stop) and exits.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _link?.Dispose();
            _link = null;
            _process?.Dispose();
            _process = null;
        }
    }

    private static string ArmLine(string path, bool withConnection, TimeSpan thawAfter) =>
        $"arm {Milliseconds(thawAfter)} {(withConnection ? "fd" : "-")} {path}";

    private static string Milliseconds(TimeSpan span) => Math.Max(0, (long)Math.Ceiling(span.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);

    /// <summary>Under <c>_lock</c>: sends one line to a live watch, starting one (told every armed socket) when there is none.</summary>
    private void Send(string line, SafeHandle? connection)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (_link is null || _process is null || _process.HasExited)
                {
                    StartWatch();
                    foreach (var armed in _armed)
                    {
                        Replay(armed);
                    }
                }

                UnixRights.Send(_link!, Encoding.UTF8.GetBytes(line + "\n"), connection);
                return;
            }
            catch (IOException) when (attempt == 0)
            {
                // The watch died since the last message: start another and tell it everything.
                _link?.Dispose();
                _link = null;
            }
        }
    }

    /// <summary>Tells a new watch about a socket armed before it: the time left, and the connection when the channel still has it open.</summary>
    private void Replay(ArmedSocket armed)
    {
        var left = TimeSpan.FromSeconds(Math.Max(0, armed.Deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
        try
        {
            UnixRights.Send(_link!, Encoding.UTF8.GetBytes(ArmLine(armed.Path, armed.Connection is not null, left) + "\n"), armed.Connection);
        }
        catch (ObjectDisposedException)
        {
            // The channel closed that connection since: the watch reaches the agent on a new one.
            UnixRights.Send(_link!, Encoding.UTF8.GetBytes(ArmLine(armed.Path, false, left) + "\n"), null);
        }
    }

    /// <summary>Under <c>_lock</c>: a new socket pair, and the watch started with the other end as <c>--fd N</c>.</summary>
    private void StartWatch()
    {
        _link?.Dispose();
        _link = null;
        _process?.Dispose();
        _process = null;
        var (mine, theirs) = UnixRights.SocketPair();
        try
        {
            // Inheritable only now, and closed here right after the start: the watch's end must not
            // linger in this process, and ours is never inherited (close-on-exec).
            UnixRights.MakeInheritable(theirs);
            var start = new ProcessStartInfo(fileName) { UseShellExecute = false };
            foreach (string argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }

            start.ArgumentList.Add("--fd");
            start.ArgumentList.Add(theirs.DangerousGetHandle().ToString(CultureInfo.InvariantCulture));
            _process = Process.Start(start) ?? throw new IOException($"the freeze watch ({fileName}) cannot be started");
            _link = mine;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            mine.Dispose();
            throw new IOException($"the freeze watch ({fileName}) cannot be started: {e.Message}", e);
        }
        catch
        {
            mine.Dispose();
            throw;
        }
        finally
        {
            theirs.Dispose();
        }
    }
}
