using System.Diagnostics;

namespace Strata.Cli.Tests;

/// <summary>Runs strata in-process and QEMU's tools as processes.</summary>
public static class Run
{
    /// <summary>`strata ARGS` in-process.</summary>
    public static CommandResult Strata(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error);
        return new CommandResult(code, output.ToString(), error.ToString());
    }

    /// <summary>`strata img ARGS` in-process.</summary>
    public static CommandResult Img(params string[] args) => Strata(["img", .. args]);

    /// <summary>`strata img ARGS`, asserting success.</summary>
    public static CommandResult ImgOk(params string[] args)
    {
        var result = Img(args);
        Assert.True(result.ExitCode == 0, $"strata img {string.Join(' ', args)}: {result}");
        return result;
    }

    /// <summary>`strata ARGS` as a process in <paramref name="folder"/>, for relative file names.</summary>
    public static CommandResult StrataIn(string folder, params string[] args) =>
        ToolIn(folder, "dotnet", [Path.Combine(AppContext.BaseDirectory, "strata.dll"), .. args]);

    public static CommandResult Tool(string tool, params string[] args) => ToolIn(null, tool, args);

    public static CommandResult ToolIn(string? folder, string tool, params string[] args)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = folder ?? "",
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill();
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish");
        }

        return new CommandResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    public static CommandResult QemuImg(params string[] args) => Tool("qemu-img", args);

    public static CommandResult QemuImgOk(params string[] args)
    {
        var result = QemuImg(args);
        Assert.True(result.ExitCode == 0, $"qemu-img {string.Join(' ', args)}: {result}");
        return result;
    }

    /// <summary>qemu-io commands (each a -c) on an image of a known format.</summary>
    public static void QemuIo(string file, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (string c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(file);
        var result = Tool("qemu-io", [.. args]);
        Assert.True(result.ExitCode == 0 && !result.Output.Contains("error", StringComparison.OrdinalIgnoreCase),
            $"qemu-io {string.Join(' ', args)}: {result}");
    }
}
