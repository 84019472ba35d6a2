using System.Diagnostics;
using System.Globalization;
using Strata.Block;
using Strata.Block.Copy;
using Strata.Cli.Img;

namespace Strata.Cli.Demo;

/// <summary>
/// The offline workflow of <c>strata demo</c>: a raw disk with a known pattern, a qcow2 overlay
/// that takes new writes while the base stays a point-in-time copy, a commit that folds the overlay
/// back, and checks of every image. Each step is timed; any failed verification fails the demo.
/// </summary>
public sealed class DemoRunner(TextWriter output, TextWriter error, string folder)
{
    private const long DiskSize = 32L << 20;
    private const string Base = "foo.img";
    private const string Overlay = "tmp_disk.img";

    /// <summary>Where the guest's "before" writes land: the first MiB, one in the middle and the last.</summary>
    private static readonly long[] BaseWrites = [0, 15L << 20, DiskSize - (1L << 20)];

    /// <summary>Where the "after snapshot" writes land: straddling the base's writes and in fresh space.</summary>
    private static readonly long[] OverlayWrites = [(1L << 20) - (256L << 10), 8L << 20, 15L << 20];

    private const int WriteLength = 1 << 20;

    private readonly byte[] _expected = new byte[DiskSize];
    private int _step;
    private bool _failed;

    public async Task<int> RunAsync()
    {
        output.WriteLine($"strata demo: the offline snapshot workflow in {folder}");
        string basePath = Path.Combine(folder, Base);
        string overlayPath = Path.Combine(folder, Overlay);
        var total = Stopwatch.StartNew();

        await StepAsync($"strata img create -f raw {Base} 32M", () => ImgAsync("create", "-f", "raw", basePath, "32M"));
        await StepAsync("write a recognizable pattern (\"BASE\" + offset) to the raw disk", async () =>
        {
            await using var disk = await ImgContext.OpenAsync(basePath, "raw", readOnly: false);
            foreach (long at in BaseWrites)
            {
                await WritePatternAsync(disk, at, "BASE");
            }

            await disk.FlushAsync();
            return true;
        });
        byte[] before = (byte[])_expected.Clone();

        await StepAsync($"strata img create -f qcow2 -b {Base} {Overlay} 32M   (the snapshot)",
            () => ImgAsync("create", "-f", "qcow2", "-b", Base, overlayPath, "32M"));
        await StepAsync("write new data (\"NEW!\" + offset) through the overlay", async () =>
        {
            await using var disk = await ImgContext.OpenAsync(overlayPath, "qcow2", readOnly: false);
            foreach (long at in OverlayWrites)
            {
                await WritePatternAsync(disk, at, "NEW!");
            }

            await disk.FlushAsync();
            return true;
        });
        await StepAsync("verify the overlay reads the new data over the old", () => VerifyAsync(overlayPath, "qcow2", _expected));
        await StepAsync($"verify {Base} is unchanged: a point-in-time copy", () => VerifyAsync(basePath, "raw", before));
        await StepAsync($"strata img check {Overlay}", () => ImgAsync("check", overlayPath));
        await StepAsync($"strata img commit {Overlay}   (merge the snapshot back)", () => ImgAsync("commit", overlayPath));
        await StepAsync($"verify {Base} now holds the new data", () => VerifyAsync(basePath, "raw", _expected));
        await StepAsync($"verify {Overlay} is empty and still reads the same", async () =>
        {
            await using var top = await ImgContext.OpenAsync(overlayPath, "qcow2", readOnly: true);
            for (long at = 0; at < top.Size;)
            {
                var extent = await top.GetBlockStatusAsync(at, top.Size - at);
                if (extent.IsAllocated)
                {
                    Detail($"offset {extent.Offset} is still allocated in the overlay");
                    return false;
                }

                at = extent.End;
            }

            return await VerifyAsync(overlayPath, "qcow2", _expected);
        });
        await StepAsync($"strata img check {Overlay}", () => ImgAsync("check", overlayPath));
        if (FindOnPath("qemu-img") is { } qemuImg)
        {
            await StepAsync($"qemu-img check {Overlay}   (QEMU agrees)", () => ToolAsync(qemuImg, "check", overlayPath));
            await StepAsync($"qemu-img compare {Overlay} {Base}", () => ToolAsync(qemuImg, "compare", overlayPath, basePath));
        }
        else
        {
            output.WriteLine("      (qemu-img not found: skipping QEMU's own check)");
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"strata demo: {(_failed ? "FAILED" : "all steps passed")} in {total.Elapsed.TotalSeconds:F2} s"));
        return _failed ? 1 : 0;
    }

    private async Task StepAsync(string title, Func<Task<bool>> action)
    {
        _step++;
        if (_failed)
        {
            output.WriteLine($"[{_step,2}] {title}: skipped");
            return;
        }

        output.WriteLine($"[{_step,2}] {title}");
        var clock = Stopwatch.StartNew();
        bool ok;
        try
        {
            ok = await action();
        }
        catch (Exception e) when (e is BlockException or IOException or CliException or InvalidOperationException)
        {
            Detail(e.Message);
            ok = false;
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"      {(ok ? "ok" : "FAILED")} ({clock.Elapsed.TotalMilliseconds:F1} ms)"));
        if (!ok)
        {
            _failed = true;
            error.WriteLine($"strata demo: step {_step} failed: {title}");
        }
    }

    private void Detail(string line) => output.WriteLine("      " + line);

    /// <summary>Runs a <c>strata img</c> command line in-process, indenting what it prints.</summary>
    private async Task<bool> ImgAsync(params string[] args)
    {
        var captured = new StringWriter();
        int code = await ImgTool.RunAsync(args, captured, captured);
        foreach (string line in captured.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Detail(line.TrimEnd('\r'));
        }

        return code == 0;
    }

    private async Task<bool> ToolAsync(string tool, params string[] args)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            Detail($"{tool} did not finish within 60 s");
            return false;
        }

        foreach (string line in ((await stdout) + (await stderr)).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Detail(line);
        }

        return process.ExitCode == 0;
    }

    /// <summary>Writes one MiB of "TAG" + offset text, so any misplaced byte shows where it came from.</summary>
    private async Task WritePatternAsync(IBlockNode disk, long at, string tag)
    {
        var data = new byte[WriteLength];
        for (int i = 0; i < data.Length; i += 16)
        {
            string text = string.Create(CultureInfo.InvariantCulture, $"{tag}{at + i:x12}");
            System.Text.Encoding.ASCII.GetBytes(text, data.AsSpan(i, 16));
        }

        await disk.WriteAsync(at, data);
        data.CopyTo(_expected.AsSpan((int)at));
    }

    private async Task<bool> VerifyAsync(string path, string format, byte[] expected)
    {
        await using var disk = await ImgContext.OpenAsync(path, format, readOnly: true);
        var actual = new byte[disk.Size];
        for (int at = 0; at < actual.Length; at += BlockCopyOptions.DefaultChunkSize)
        {
            // One request stays within the node's largest transfer.
            await disk.ReadAsync(at, actual.AsMemory(at, Math.Min(BlockCopyOptions.DefaultChunkSize, actual.Length - at)));
        }

        int first = actual.AsSpan().CommonPrefixLength(expected);
        if (first < expected.Length || actual.Length != expected.Length)
        {
            Detail($"first difference at offset {first}");
            return false;
        }

        Detail($"{expected.Length} bytes as expected");
        return true;
    }

    private static string? FindOnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, tool)).FirstOrDefault(File.Exists);
}
