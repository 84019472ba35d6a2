using System.Diagnostics;
using System.Text.Json;

namespace Strata.Formats.Tests;

/// <summary>Runs qemu-img and qemu-io as oracles (installed on every test machine).</summary>
public static class QemuTool
{
    public static (int ExitCode, string Output, string Error) Run(string tool, params string[] args)
    {
        var info = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill();
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish");
        }

        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs a tool and fails the test when it exits non-zero.</summary>
    public static string Ok(string tool, params string[] args)
    {
        var (code, output, error) = Run(tool, args);
        Assert.True(code == 0, $"{tool} {string.Join(' ', args)} exited {code}: {error}{output}");
        return output;
    }

    /// <summary>qemu-img check --output=json, parsed.</summary>
    public static JsonElement Check(string path)
    {
        var (code, output, error) = Run("qemu-img", "check", "--output=json", "-f", "qcow2", path);
        Assert.True(output.Length > 0, $"qemu-img check printed nothing (exit {code}): {error}");
        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.Clone();
    }

    /// <summary>Asserts qemu-img check finds neither corruption nor leak.</summary>
    public static void AssertClean(string path, string context = "")
    {
        var (code, output, error) = Run("qemu-img", "check", "-f", "qcow2", path);
        Assert.True(code == 0, $"qemu-img check of {path} exited {code} {context}: {output}{error}");
    }

    public static JsonElement Info(string path)
    {
        string output = Ok("qemu-img", "info", "--output=json", path);
        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.Clone();
    }
}
