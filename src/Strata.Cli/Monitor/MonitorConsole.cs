using System.Text.Json;
using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.Formats;

namespace Strata.Cli.Monitor;

/// <summary>
/// The <c>(strata)</c> console: the seed workflow's commands (<c>change -l</c>, <c>merge_disk</c>,
/// <c>info block</c>, …) mapped onto the daemon's control protocol, plus any QMP command as JSON.
/// </summary>
public sealed class MonitorConsole(QmpClient qmp, TextWriter output, TextWriter error, bool interactive)
{
    private static readonly TimeSpan MergeTimeout = TimeSpan.FromHours(24);

    public const string HelpText = """
        change -l [--freeze] DEVICE file=PATH
                                     live snapshot: from now on DEVICE writes go to the qcow2 overlay PATH
                                     (an existing overlay is taken as it is, else PATH is created);
                                     --freeze: freeze the guest writing DEVICE around the switch
        merge_disk PATH              merge the overlay PATH into its backing image, live, and switch the
                                     drive back to that image; returns when done
        set_dirty DEVICE FILE        from now on mark every write of DEVICE in the dirty_bitmap FILE (created,
                                     at 64 KiB granularity, when missing); a bitmap set earlier this way
                                     goes on until the next 'change -l' of DEVICE, where it stops
        info block                   the drives, their image chains and their dirty bitmaps
        info jobs                    running merges and their progress
        info guests                  the guests, their agents, drives and freeze state
        guest_cmd begin_snapshot [GUEST]
                                     freeze the guest's file systems; returns when its agent acknowledged
        guest_cmd end_snapshot [GUEST]
                                     thaw them (a freeze is thawed by itself after its lease, 5 s by default)
        guest_cmd ping [GUEST]       is the guest's agent answering?
        stop | cont                  hold / release guest I/O
        quit                         stop the daemon (it flushes and closes every image)
        {"execute": ...}             any control command, in QMP's JSON
        help                         this text
        """;

    /// <summary>Runs one command line; true when it succeeded. <paramref name="quit"/> tells the caller to stop reading.</summary>
    public async Task<bool> RunLineAsync(string line, Action quit)
    {
        ArgumentNullException.ThrowIfNull(line);
        ArgumentNullException.ThrowIfNull(quit);
        string text = line.Trim();
        if (text.Length == 0 || text.StartsWith('#'))
        {
            return true;
        }

        try
        {
            if (text.StartsWith('{'))
            {
                return await RawAsync(text);
            }

            var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            switch (words[0])
            {
                case "help" or "?":
                    output.WriteLine(HelpText);
                    return true;
                case "change":
                    await ChangeAsync(words);
                    return true;
                case "merge_disk":
                    await MergeAsync(words);
                    return true;
                case "info" when words.Length == 2 && words[1] == "block":
                    await InfoBlockAsync();
                    return true;
                case "info" when words.Length == 2 && words[1] is "jobs" or "block-jobs":
                    await InfoJobsAsync();
                    return true;
                case "stop" or "cont":
                    await qmp.ExecuteAsync(words[0]);
                    return true;
                case "quit" or "q":
                    await qmp.ExecuteAsync("quit");
                    quit();
                    return true;
                case "set_dirty":
                    await SetDirtyAsync(words);
                    return true;
                case "guest_cmd":
                    await GuestCommandAsync(words);
                    return true;
                case "info" when words.Length == 2 && words[1] == "guests":
                    await InfoGuestsAsync();
                    return true;
                default:
                    error.WriteLine($"Error: unknown command '{words[0]}' (type 'help')");
                    return false;
            }
        }
        catch (QmpException e)
        {
            error.WriteLine($"Error: {e.Message}");
            return false;
        }
        catch (UsageException e)
        {
            error.WriteLine($"Error: {e.Message}");
            return false;
        }
    }

    /// <summary><c>change -l DEVICE file=PATH</c>: blockdev-snapshot-sync, taking an existing overlay as it is.</summary>
    private async Task ChangeAsync(string[] words)
    {
        bool freeze = words.Length == 5 && words[2] == "--freeze";
        if (freeze)
        {
            words = [words[0], words[1], words[3], words[4]];
        }

        if (words.Length != 4 || words[1] != "-l" || !words[3].StartsWith("file=", StringComparison.Ordinal) || words[3].Length == 5)
        {
            throw new UsageException("usage: change -l [--freeze] DEVICE file=PATH");
        }

        string path = ImageOpener.FullName(words[3][5..]);
        var arguments = new JsonObject
        {
            ["device"] = words[2],
            ["snapshot-file"] = path,
            ["format"] = "qcow2",
            ["mode"] = new ImageLayerOpener().Exists(path) ? "existing" : "absolute-paths",
        };
        if (freeze)
        {
            arguments["x-strata-freeze"] = true;
        }

        var reply = await qmp.ExecuteAsync("blockdev-snapshot-sync", arguments);
        output.WriteLine($"{words[2]}: writes now go to {path}");
        GuestReport.WriteSnapshot(reply, output, error);

        // The switch happened; an old image that could not be flushed after it is not yet durable.
        if (reply is JsonObject result && result["unflushed"] is JsonArray unflushed)
        {
            foreach (var image in unflushed)
            {
                error.WriteLine($"Warning: {image?["file"]} is frozen but not yet flushed ({image?["reason"]}); the next guest flush retries it");
            }
        }
    }

    /// <summary><c>set_dirty DEVICE FILE</c>: x-strata-set-dirty, the bitmap named after the file (docs/bitmaps.md).</summary>
    private async Task SetDirtyAsync(string[] words)
    {
        if (words.Length != 3)
        {
            throw new UsageException("usage: set_dirty DEVICE FILE");
        }

        string path = ImageOpener.FullName(words[2]);
        await qmp.ExecuteAsync("x-strata-set-dirty", new JsonObject { ["device"] = words[1], ["file"] = path });
        output.WriteLine($"{words[1]}: writes are now marked in {path} (bitmap {Path.GetFileNameWithoutExtension(path)})");
    }

    /// <summary>
    /// <c>merge_disk PATH</c>: block-commit of PATH into its backing image; for the active image it
    /// completes the job as soon as it is ready, then waits until the drive is back on the base.
    /// </summary>
    private async Task MergeAsync(string[] words)
    {
        if (words.Length != 2)
        {
            throw new UsageException("usage: merge_disk PATH");
        }

        string path = ImageOpener.FullName(words[1]);
        var (device, backing, active) = await LocateAsync(path);
        string jobId = $"merge-{device}";
        var arguments = new JsonObject { ["device"] = device, ["job-id"] = jobId, ["base"] = backing };
        if (!active)
        {
            arguments["top"] = path;
        }

        await qmp.ExecuteAsync("block-commit", arguments);
        using var progress = interactive ? new MergeProgress(output) : null;
        using var cts = new CancellationTokenSource(MergeTimeout);
        while (true)
        {
            var next = qmp.Events.ReadAsync(cts.Token).AsTask();
            while (progress is not null && await Task.WhenAny(next, Task.Delay(200, cts.Token)) != next)
            {
                await ShowProgressAsync(jobId, progress);
            }

            var e = await next;
            string name = e["event"]?.GetValue<string>() ?? "";
            var data = e["data"] as JsonObject;
            if (data?["device"]?.GetValue<string>() != jobId && data?["id"]?.GetValue<string>() != jobId)
            {
                continue;
            }

            if (name == "BLOCK_JOB_READY")
            {
                await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = jobId });
            }
            else if (name == "BLOCK_JOB_COMPLETED")
            {
                progress?.Done();
                if (data?["error"]?.GetValue<string>() is { } failure)
                {
                    throw new QmpException($"merge of {path} failed: {failure}");
                }

                output.WriteLine($"{device}: merged {path} into {backing}; the drive is on {backing} again");
                return;
            }
            else if (name == "BLOCK_JOB_CANCELLED")
            {
                progress?.Done();
                throw new QmpException($"merge of {path} was cancelled; {device} stays on {path}");
            }
        }
    }

    private async Task ShowProgressAsync(string jobId, MergeProgress progress)
    {
        var jobs = (await qmp.ExecuteAsync("query-jobs"))?.AsArray() ?? [];
        foreach (var job in jobs)
        {
            if (job?["id"]?.GetValue<string>() == jobId)
            {
                progress.Show(job["current-progress"]!.GetValue<long>(), job["total-progress"]!.GetValue<long>());
            }
        }
    }

    /// <summary>Finds the drive whose chain holds <paramref name="path"/>, the image below it, and whether it is the top.</summary>
    private async Task<(string Device, string Backing, bool Active)> LocateAsync(string path)
    {
        var drives = (await qmp.ExecuteAsync("query-block"))?.AsArray() ?? [];
        foreach (var drive in drives)
        {
            var image = drive?["inserted"]?["image"];
            bool top = true;
            while (image is not null)
            {
                if (image["filename"]?.GetValue<string>() == path)
                {
                    string backing = image["backing-image"]?["filename"]?.GetValue<string>()
                        ?? throw new UsageException($"{path} has no backing image to merge into");
                    return (drive!["device"]!.GetValue<string>(), backing, top);
                }

                image = image["backing-image"];
                top = false;
            }
        }

        throw new UsageException($"no drive uses {path}");
    }

    private async Task InfoBlockAsync()
    {
        var drives = (await qmp.ExecuteAsync("query-block"))?.AsArray() ?? [];
        foreach (var drive in drives)
        {
            var inserted = drive?["inserted"];
            output.WriteLine($"{drive?["device"]}: {inserted?["file"]} ({inserted?["drv"]}{(inserted?["ro"]?.GetValue<bool>() == true ? ", read-only" : "")})");
            int depth = 0;
            for (var image = inserted?["image"]?["backing-image"]; image is not null; image = image["backing-image"])
            {
                depth++;
                output.WriteLine($"    Backing file:     {image["filename"]} ({image["format"]}, chain depth: {depth})");
            }

            foreach (var bitmap in inserted?["dirty-bitmaps"]?.AsArray() ?? [])
            {
                output.WriteLine($"    Dirty bitmap:     {BitmapLine(bitmap!)}");
            }
        }
    }

    /// <summary>One bitmap of query-block as info block shows it: name, state, granularity, dirty bytes, where it lives.</summary>
    private static string BitmapLine(JsonNode bitmap)
    {
        var state = new List<string> { bitmap["recording"]?.GetValue<bool>() == true ? "recording" : "stopped" };
        if (bitmap["inconsistent"]?.GetValue<bool>() == true)
        {
            state.Add("inconsistent");
        }

        if (bitmap["busy"]?.GetValue<bool>() == true)
        {
            state.Add("busy");
        }

        string home = bitmap["file"] is { } file ? $", in {file}" : bitmap["persistent"]?.GetValue<bool>() == true ? ", in the image" : "";
        return $"{bitmap["name"]} ({string.Join(", ", state)}, granularity {bitmap["granularity"]}, {bitmap["count"]} bytes dirty{home})";
    }

    /// <summary><c>guest_cmd begin_snapshot|end_snapshot|ping [GUEST]</c>: the x-strata-guest-* commands (docs/guest.md).</summary>
    private async Task GuestCommandAsync(string[] words)
    {
        if (words.Length is < 2 or > 3)
        {
            throw new UsageException("usage: guest_cmd begin_snapshot|end_snapshot|ping [GUEST]");
        }

        var arguments = new JsonObject();
        if (words.Length == 3)
        {
            arguments["guest"] = words[2];
        }

        string command = words[1] switch
        {
            "begin_snapshot" => "x-strata-guest-begin-snapshot",
            "end_snapshot" => "x-strata-guest-end-snapshot",
            "ping" => "x-strata-guest-ping",
            _ => throw new UsageException("usage: guest_cmd begin_snapshot|end_snapshot|ping [GUEST]"),
        };
        output.WriteLine(GuestReport.Line(words[1], await qmp.ExecuteAsync(command, arguments)));
    }

    private async Task InfoGuestsAsync()
    {
        var guests = (await qmp.ExecuteAsync("query-guests"))?.AsArray() ?? [];
        if (guests.Count == 0)
        {
            output.WriteLine("No guests");
        }

        foreach (var guest in guests)
        {
            output.WriteLine(GuestReport.InfoLine(guest!));
        }
    }

    private async Task InfoJobsAsync()
    {
        // QEMU's "info block-jobs" wording, with the job's state and a percentage added.
        var jobs = (await qmp.ExecuteAsync("query-block-jobs"))?.AsArray() ?? [];
        if (jobs.Count == 0)
        {
            output.WriteLine("No active jobs");
        }

        foreach (var job in jobs)
        {
            long done = job?["offset"]?.GetValue<long>() ?? 0;
            long total = job?["len"]?.GetValue<long>() ?? 0;
            string percent = total > 0 ? $" ({done * 100 / total}%)" : "";
            output.WriteLine($"Type {job?["type"]}, device {job?["device"]}: Completed {done} of {total} bytes{percent}, " +
                $"speed limit {job?["speed"]} bytes/s, {job?["status"]}");
        }
    }

    private async Task<bool> RawAsync(string text)
    {
        JsonObject message;
        try
        {
            message = JsonNode.Parse(text) as JsonObject ?? throw new UsageException("a QMP command is a JSON object");
        }
        catch (JsonException e)
        {
            throw new UsageException($"JSON parse error: {e.Message}");
        }

        var reply = await qmp.SendAsync(message);
        output.WriteLine(reply.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (message["execute"]?.GetValue<string>() == "quit")
        {
            return true;
        }

        return reply["error"] is null;
    }
}
