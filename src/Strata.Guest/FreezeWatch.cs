using System.Diagnostics;

namespace Strata.Guest;

/// <summary>
/// The daemon's end of the freeze watch: a small process (<c>strata guest-watch</c>, see
/// <see cref="FreezeWatcher"/>) started at the first freeze and kept, reading lines on a pipe from
/// this process: <c>arm PATH</c> before a freeze is sent to the agent at PATH, <c>disarm PATH</c>
/// after its thaw was acknowledged. The pipe's write end lives only here (descriptors are not
/// inherited), so when this process ends, however it ends, SIGKILL included, the watch reads end of
/// file and thaws every socket still armed. A watch that died is started again, and told every
/// armed socket, before the next freeze.
/// </summary>
public sealed class FreezeWatch(string fileName, IReadOnlyList<string> arguments) : IFreezeWatch, IDisposable
{
    // Protects _process and _armed.
    private readonly Lock _lock = new();
    private Process? _process;
    private readonly List<string> _armed = [];

    public void Arm(string socketPath)
    {
        ArgumentNullException.ThrowIfNull(socketPath);
        if (socketPath.Contains('\n', StringComparison.Ordinal))
        {
            throw new IOException("a guest socket path with a newline cannot be watched");
        }

        lock (_lock)
        {
            // Sent before it joins the armed list: a watch started by this send is told the list
            // first, and must not hear this socket twice (one disarm would then leave it armed).
            Send($"arm {socketPath}");
            _armed.Add(socketPath);
        }
    }

    public void Disarm(string socketPath)
    {
        lock (_lock)
        {
            if (!_armed.Remove(socketPath))
            {
                return;
            }

            try
            {
                Send($"disarm {socketPath}");
            }
            catch (IOException)
            {
                // A watch that cannot be told has died; the next Arm starts one that knows only what is armed.
            }
        }
    }

    /// <summary>Closes the pipe: the watch thaws whatever is still armed (nothing, after a clean stop) and exits.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_process is null)
            {
                return;
            }

            try
            {
                _process.StandardInput.Close();
            }
            catch (IOException)
            {
                // Already gone.
            }

            _process.Dispose();
            _process = null;
        }
    }

    /// <summary>Under <c>_lock</c>: writes one line to a live watch, starting one (told every armed socket) when there is none.</summary>
    private void Send(string line)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (_process is null || _process.HasExited)
                {
                    _process?.Dispose();
                    _process = null;
                    _process = StartWatch();
                    foreach (string armed in _armed)
                    {
                        _process.StandardInput.WriteLine($"arm {armed}");
                    }
                }

                _process.StandardInput.WriteLine(line);
                _process.StandardInput.Flush();
                return;
            }
            catch (Exception e) when (attempt == 0 && e is IOException or InvalidOperationException)
            {
                _process?.Dispose();
                _process = null;
            }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                throw new IOException($"the freeze watch ({fileName}) cannot be started: {e.Message}", e);
            }
        }
    }

    private Process StartWatch()
    {
        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            return Process.Start(start) ?? throw new IOException($"the freeze watch ({fileName}) cannot be started");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new IOException($"the freeze watch ({fileName}) cannot be started: {e.Message}", e);
        }
    }
}
