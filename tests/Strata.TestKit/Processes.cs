using System.Diagnostics;
using System.Text;

namespace Strata.TestKit;

/// <summary>
/// Runs a program (qemu-img, qemu-io, nbdinfo, fio, the strata CLI …) to completion. The child gets
/// <c>LC_ALL=C</c>, so peers print the messages tests match; its output is kept whole. A child that
/// outlives its timeout is killed with every process it started (only those: the tree below the PID
/// this call started) and the test fails with a <see cref="TimeoutException"/> that holds the command
/// line and what it printed, so a hung tool fails one test, never passes one that expects a failure.
/// </summary>
public static class Processes
{
    /// <summary>How long a bounded wait for process output may take once the process has exited or been killed.</summary>
    private static readonly TimeSpan DrainBound = TimeSpan.FromSeconds(10);

    public static ProcessResult Run(string program, params string[] args) => RunAsync(program, args).GetAwaiter().GetResult();

    public static ProcessResult Run(string program, IEnumerable<string> args, ProcessOptions? options = null) =>
        RunAsync(program, args, options).GetAwaiter().GetResult();

    public static Task<ProcessResult> RunAsync(string program, params string[] args) => RunAsync(program, args, null);

    /// <summary>
    /// Runs <paramref name="program"/>. Cancelling <paramref name="cancellationToken"/> kills it (with its
    /// children) and throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public static async Task<ProcessResult> RunAsync(string program, IEnumerable<string> args, ProcessOptions? options,
        CancellationToken cancellationToken = default)
    {
        options ??= ProcessOptions.Default;
        var start = StartInfo(program, args, options);
        string commandLine = CommandLine(start);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start: {commandLine}");
        var stdout = new OutputCapture(process.StandardOutput);
        var stderr = new OutputCapture(process.StandardError);
        var input = WriteInputAsync(process, options.Stdin);
        var deadline = Stopwatch.StartNew();
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(options.Timeout);
        try
        {
            await process.WaitForExitAsync(timer.Token);
        }
        catch (OperationCanceledException)
        {
            await KillTreeAsync(process);
            string story = await StoryAsync(commandLine, stdout, stderr);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"killed with its children after {options.Timeout.TotalSeconds:0} s:\n{story}");
        }

        var remaining = options.Timeout - deadline.Elapsed;
        try
        {
            await Task.WhenAll(stdout.Completion, stderr.Completion).WaitAsync(remaining > DrainBound ? remaining : DrainBound, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"exited {process.ExitCode}, but a process it left behind still holds its output open:\n{await StoryAsync(commandLine, stdout, stderr)}");
        }

        await input;
        return new ProcessResult(commandLine, process.ExitCode, stdout.Text, stderr.Text);
    }

    /// <summary>Runs a program and fails with the whole story unless it exits 0; returns its standard output.</summary>
    public static string Ok(string program, params string[] args) => Run(program, args).AssertSuccess().Stdout;

    /// <summary>Runs a program and fails with the whole story unless it exits 0; returns its standard output.</summary>
    public static async Task<string> OkAsync(string program, params string[] args) => (await RunAsync(program, args)).AssertSuccess().Stdout;

    /// <summary>The strata CLI built next to the test assembly, copied there by a project reference to src/Strata.Cli.</summary>
    public static string StrataDll
    {
        get
        {
            string dll = Path.Combine(AppContext.BaseDirectory, "strata.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("the strata CLI is not built next to the tests (reference src/Strata.Cli)", dll);
        }
    }

    /// <summary>Runs <c>strata ARGS</c> as a process, through the dotnet host that runs the tests.</summary>
    public static ProcessResult Strata(params string[] args) => StrataAsync(args).GetAwaiter().GetResult();

    public static ProcessResult Strata(IEnumerable<string> args, ProcessOptions? options) => StrataAsync(args, options).GetAwaiter().GetResult();

    public static Task<ProcessResult> StrataAsync(params string[] args) => StrataAsync(args, null);

    public static Task<ProcessResult> StrataAsync(IEnumerable<string> args, ProcessOptions? options) =>
        RunAsync(DotnetHost(), args.Prepend(StrataDll), options);

    /// <summary>
    /// Runs nbdsh and returns its standard output, failing unless it exits 0. nbdsh starts "python3"
    /// from PATH, which must be the system's (where python3-libnbd lives), not one a developer put first.
    /// </summary>
    public static async Task<string> NbdshAsync(params string[] args)
    {
        var options = new ProcessOptions
        {
            Environment = new Dictionary<string, string?> { ["PATH"] = "/usr/bin:/bin:" + System.Environment.GetEnvironmentVariable("PATH") },
        };
        return (await RunAsync("/usr/bin/nbdsh", args, options)).AssertSuccess().Stdout;
    }

    /// <summary>The dotnet executable running this process, so tests use the same runtime as the CLI.</summary>
    public static string DotnetHost()
    {
        string? host = System.Environment.ProcessPath;
        if (host is not null && Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            return host;
        }

        string? root = System.Environment.GetEnvironmentVariable("DOTNET_ROOT");
        return root is not null && File.Exists(Path.Combine(root, "dotnet")) ? Path.Combine(root, "dotnet") : "dotnet";
    }

    /// <summary>The start info every child gets: output redirected, stdin ours to close, <c>LC_ALL=C</c>, then the caller's options.</summary>
    internal static ProcessStartInfo StartInfo(string program, IEnumerable<string> args, ProcessOptions options)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(args);
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = options.WorkingDirectory ?? "",
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // Peers must not pick up a caller's locale, which changes their messages.
        start.Environment["LC_ALL"] = "C";
        foreach (var (name, value) in options.Environment ?? new Dictionary<string, string?>())
        {
            start.Environment[name] = value;
        }

        return start;
    }

    internal static string CommandLine(ProcessStartInfo start) => string.Join(' ', start.ArgumentList.Prepend(start.FileName).Select(Quote));

    /// <summary>Kills <paramref name="process"/> and every process below it, if it still runs, and waits (bounded) until it has gone.</summary>
    internal static async Task KillTreeAsync(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Exited meanwhile.
        }

        using var bound = new CancellationTokenSource(DrainBound);
        await process.WaitForExitAsync(bound.Token);
    }

    /// <summary>The command line and what the child printed, once its pipes close or a short bound passes.</summary>
    internal static async Task<string> StoryAsync(string commandLine, OutputCapture stdout, OutputCapture stderr)
    {
        await Task.WhenAny(Task.WhenAll(stdout.Completion, stderr.Completion), Task.Delay(DrainBound));
        return $"$ {commandLine}\nstdout:\n{stdout.Text}\nstderr:\n{stderr.Text}";
    }

    private static async Task WriteInputAsync(Process process, string? input)
    {
        try
        {
            if (input is not null)
            {
                await process.StandardInput.WriteAsync(input);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The child exited without reading all of it: its exit code and output say why.
        }
    }

    private static string Quote(string arg)
        => arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c)) ? arg : $"'{arg.Replace("'", "'\\''")}'";
}
