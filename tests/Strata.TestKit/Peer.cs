using System.Diagnostics;
using System.Text;

namespace Strata.TestKit;

/// <summary>
/// Runs a peer program (qemu-img, qemu-io, nbdinfo, the strata CLI …) to completion with a timeout and
/// captured output. A peer that outlives its timeout is killed (by its own PID, with its children) and
/// reported as exit code -1, so a hung tool fails one test instead of the whole run.
/// </summary>
public static class Peer
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(2);

    public static PeerResult Run(string program, params string[] args) => RunAsync(program, args, DefaultTimeout).GetAwaiter().GetResult();

    public static PeerResult Run(string program, IEnumerable<string> args, TimeSpan timeout) => RunAsync(program, args, timeout).GetAwaiter().GetResult();

    public static Task<PeerResult> RunAsync(string program, params string[] args) => RunAsync(program, args, DefaultTimeout);

    public static async Task<PeerResult> RunAsync(string program, IEnumerable<string> args, TimeSpan timeout,
        string? workingDirectory = null, CancellationToken cancellationToken = default)
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
        };
        if (workingDirectory is not null)
        {
            start.WorkingDirectory = workingDirectory;
        }

        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // Peers must not pick up a caller's locale or QEMU settings that change their messages.
        start.Environment["LC_ALL"] = "C";
        string commandLine = string.Join(' ', start.ArgumentList.Prepend(program).Select(Quote));
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timer.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            return new PeerResult(commandLine, -1, await stdout, $"{await stderr}\n(killed after {timeout.TotalSeconds} s)");
        }

        return new PeerResult(commandLine, process.ExitCode, await stdout, await stderr);
    }

    /// <summary>
    /// Runs the strata command line built next to the test assembly (<c>strata.dll</c>, copied there by
    /// the project reference) through the dotnet host that runs the tests.
    /// </summary>
    public static PeerResult Strata(params string[] args) => StrataAsync(args).GetAwaiter().GetResult();

    public static Task<PeerResult> StrataAsync(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "strata.dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException("the strata CLI is not built next to the tests (reference src/Strata.Cli)", dll);
        }

        return RunAsync(DotnetHost(), args.Prepend(dll), DefaultTimeout);
    }

    /// <summary>The dotnet executable running this process, so tests use the same runtime as the CLI.</summary>
    public static string DotnetHost()
    {
        string? host = Environment.ProcessPath;
        if (host is not null && Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            return host;
        }

        string? root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        return root is not null && File.Exists(Path.Combine(root, "dotnet")) ? Path.Combine(root, "dotnet") : "dotnet";
    }

    private static string Quote(string arg)
        => arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c)) ? arg : $"'{arg.Replace("'", "'\\''")}'";
}
