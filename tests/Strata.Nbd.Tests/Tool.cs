using System.Diagnostics;

namespace Strata.Nbd.Tests;

/// <summary>Runs a peer tool (nbdinfo, qemu-img, fio …) to completion; killed by its PID if it hangs.</summary>
public static class Tool
{
    public static async Task<ToolResult> RunAsync(string file, IEnumerable<string> arguments, TimeSpan? timeout = null, string? standardInput = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = standardInput is not null,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput);
            process.StandardInput.Close();
        }

        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return new ToolResult(-1, await stdout, await stderr + $"\n{file} timed out and was killed");
        }

        return new ToolResult(process.ExitCode, await stdout, await stderr);
    }

    public static Task<ToolResult> RunAsync(string file, params string[] arguments) => RunAsync(file, (IEnumerable<string>)arguments);

    /// <summary>
    /// Runs nbdsh. It starts "python3" from PATH, which must be the system's one (where python3-libnbd
    /// lives), not a python a developer put first on PATH.
    /// </summary>
    public static async Task<string> NbdshAsync(params string[] arguments)
    {
        var environment = new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin:" + Environment.GetEnvironmentVariable("PATH") };
        var result = await RunAsync("/usr/bin/nbdsh", arguments, environment: environment);
        Assert.True(result.ExitCode == 0, $"nbdsh {string.Join(' ', arguments)} failed: {result}");
        return result.StandardOutput;
    }

    /// <summary>Runs and asserts success, returning standard output.</summary>
    public static async Task<string> CheckAsync(string file, params string[] arguments)
    {
        var result = await RunAsync(file, arguments);
        Assert.True(result.ExitCode == 0, $"{file} {string.Join(' ', arguments)} failed: {result}");
        return result.StandardOutput;
    }
}
