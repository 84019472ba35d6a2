using System.Diagnostics;
using System.Text;

namespace Strata.TestKit;

/// <summary>`strata serve …` as a real process (built beside the tests); killed by its PID if still running at the end.</summary>
public sealed class ServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _error = new();

    private ServeProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Append(_output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(_error, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Id => _process.Id;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public string Error
    {
        get
        {
            lock (_error)
            {
                return _error.ToString();
            }
        }
    }

    public static ServeProcess Start(string workingDirectory, IReadOnlyDictionary<string, string?>? environment, params string[] arguments)
        => Launch(Peer.DotnetHost(), [], workingDirectory, environment, arguments);

    /// <summary>
    /// As <see cref="Start"/>, with SIGINT ignored when the daemon starts, as a shell leaves it for a
    /// command a script runs in the background (<c>trap '' INT</c>, then exec).
    /// </summary>
    public static ServeProcess StartWithSigintIgnored(string workingDirectory, params string[] arguments)
        => Launch("/bin/sh", ["-c", "trap '' INT; exec \"$0\" \"$@\"", Peer.DotnetHost()], workingDirectory, null, arguments);

    private static ServeProcess Launch(string program, string[] prefix, string workingDirectory, IReadOnlyDictionary<string, string?>? environment, string[] arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (string argument in prefix)
        {
            start.ArgumentList.Add(argument);
        }

        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "strata.dll"));
        start.ArgumentList.Add("serve");
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            start.Environment[name] = value;
        }

        return new ServeProcess(Process.Start(start) ?? throw new InvalidOperationException("could not start strata serve"));
    }

    /// <summary>Waits (bounded) until <paramref name="path"/> exists; fails with the daemon's output if it exits first.</summary>
    public async Task WaitForFileAsync(string path)
    {
        for (int i = 0; i < 600; i++)
        {
            if (File.Exists(path))
            {
                return;
            }

            ThrowIfExited();
            await Task.Delay(50);
        }

        throw new TimeoutException($"{path} never appeared ({ExitText()})");
    }

    /// <summary>Waits (bounded) until the daemon has printed <paramref name="text"/> on stdout or stderr.</summary>
    public async Task WaitForOutputAsync(string text)
    {
        for (int i = 0; i < 600 && !Printed(text); i++)
        {
            ThrowIfExited();
            await Task.Delay(50);
        }

        if (!Printed(text))
        {
            throw new TimeoutException($"strata serve never printed '{text}' ({ExitText()})");
        }
    }

    /// <summary>Waits (bounded) for the daemon to exit; if it does not, says what it printed so far.</summary>
    public async Task<int> WaitForExitAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"strata serve (pid {_process.Id}) did not exit within 60 s ({ExitText()})");
        }

        return _process.ExitCode;
    }

    public async Task SignalAsync(string signal) =>
        (await Peer.RunAsync("kill", $"-{signal}", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture))).EnsureSuccess();

    /// <summary>SIGKILL: no flush, no clean close — a crash.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync();
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process.Dispose();
    }

    private void ThrowIfExited()
    {
        if (_process.HasExited)
        {
            throw new InvalidOperationException($"strata serve exited early ({ExitText()})");
        }
    }

    private bool Printed(string text) => Output.Contains(text, StringComparison.Ordinal) || Error.Contains(text, StringComparison.Ordinal);

    private string ExitText() => $"stdout: {Output} stderr: {Error}";

    private static void Append(StringBuilder builder, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (builder)
        {
            builder.AppendLine(line);
        }
    }
}
