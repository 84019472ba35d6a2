using System.Text.Json;
using Strata.Block;
using Strata.Block.Bitmaps;
using Strata.Block.Jobs;
using Strata.Block.Live;
using Strata.Daemon.Live;
using Strata.Formats;

namespace Strata.Daemon.Control;

/// <summary>Live snapshot, merge and job commands (qapi/block-core.json, qapi/job.json).</summary>
public sealed partial class QmpCommands
{
    /// <summary>
    /// blockdev-snapshot-sync for one or several drives at one point in time (a transaction): the
    /// actions are read into one engine call, <see cref="Drive.SnapshotAsync(IReadOnlyList{SnapshotRequest}, IReadOnlyList{Strata.Block.Bitmaps.BitmapAction}?, CancellationToken)"/>. A failure before the
    /// switch leaves every drive as it was. From the switch on the command succeeds: if an old image
    /// could not be flushed afterwards, the reply lists it under "unflushed", a BLOCK_IO_ERROR event
    /// names it and the log says so (docs/live.md).
    /// </summary>
    private async Task<QmpResult> SnapshotAsync(IReadOnlyList<QmpArguments> actions, CancellationToken cancellationToken,
        IReadOnlyList<(string Type, QmpArguments Data)>? bitmapActions = null)
    {
        var requests = actions.Select(ToSnapshotRequest).ToList();
        bool freeze = actions.Any(a => a.OptionalBool("x-strata-freeze", false));
        await _daemon.GraphLock.WaitAsync(cancellationToken);
        GuestHold? guests = null;
        try
        {
            // Read under the lock: the bitmaps an action names are those of this moment.
            var bitmaps = bitmapActions?.Select(b => ToBitmapAction(b.Type, b.Data)).ToList();
            var drives = requests.Select(r => r.Drive).ToList();

            // The guests writing these drives: frozen now (x-strata-freeze), or held as they are so
            // that a lease cannot end mid-switch; an expired freeze refuses the snapshot (docs/guest.md).
            guests = await HoldGuestsAsync(drives, freeze, cancellationToken);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var result = await Drive.SnapshotAsync(requests, bitmaps, cancellationToken);
            guests.Switch = clock.Elapsed;
            await guests.ExitAsync();
            _daemon.Log($"snapshot of {string.Join(", ", drives.Select(d => d.Id))}: overlays ready in {result.Prepare.TotalMilliseconds:0.000} ms, {result.Timings}");
            LogBitmapProblems(result.BitmapProblems);
            return ReportUnflushed(result.Unflushed, drives, guests.HasMembers ? guests.Write : null);
        }
        finally
        {
            // A failed snapshot thaws too (a second exit does nothing).
            if (guests is not null)
            {
                await guests.ExitAsync();
            }

            _daemon.PublishBitmaps();
            _daemon.GraphLock.Release();
        }
    }

    /// <summary>One blockdev-snapshot-sync action's arguments, as the engine takes them.</summary>
    private SnapshotRequest ToSnapshotRequest(QmpArguments args)
    {
        string device = args.OptionalString("device") ?? args.OptionalString("node-name")
            ?? throw new QmpException("Parameter 'device' is missing");
        var drive = FindDrive(device);
        string file = args.String("snapshot-file");
        string format = args.OptionalString("format") ?? "qcow2";
        if (format != "qcow2")
        {
            throw new QmpException($"Snapshot format '{format}' is not supported (qcow2 only)");
        }

        var mode = args.OptionalString("mode") switch
        {
            null or "absolute-paths" => SnapshotMode.AbsolutePaths,
            "existing" => SnapshotMode.Existing,
            var other => throw new QmpException($"Invalid parameter 'mode': '{other}' (absolute-paths, existing)"),
        };
        return new SnapshotRequest(drive, file, mode);
    }

    private Drive FindDrive(string device) =>
        _daemon.FindDrive(device) ?? throw new QmpException($"Cannot find device='{device}' nor node-name='{device}'", "DeviceNotFound");

    /// <summary>
    /// The reply to a snapshot that switched: empty, as QEMU's, or, when old images could not be
    /// flushed after the switch, an "unflushed" list (a member QMP clients that do not know it ignore)
    /// with a BLOCK_IO_ERROR event and a log line for each. Not an error reply: QEMU users read an
    /// error as "nothing changed" and might delete the overlay the drive now writes to.
    /// </summary>
    private QmpResult ReportUnflushed(IReadOnlyList<UnflushedImage> unflushed, List<Drive> drives, Action<Utf8JsonWriter>? more = null)
    {
        if (unflushed.Count == 0 && more is null)
        {
            return QmpResult.Empty;
        }

        var entries = new List<(string Device, string File, string Reason)>();
        foreach (var image in unflushed)
        {
            string device = drives.First(d => d.Gate == image.Gate).Id;
            string file = image.Node.FileName is { } f ? ImageOpener.FullName(f) : image.Node.DriverName;
            entries.Add((device, file, image.Reason));
            _daemon.Log($"snapshot of {device}: flushing the old image {file} failed: {image.Reason}; writes go to the overlay, and every guest flush retries it");
            _daemon.Emit(new QmpEvent("BLOCK_IO_ERROR", w =>
            {
                w.WriteStartObject();
                w.WriteString("device", device);
                w.WriteString("operation", "write");
                w.WriteString("action", "report");
                w.WriteString("reason", $"flushing the old image {file} after the snapshot failed: {image.Reason}");
                w.WriteEndObject();
            }));
        }

        return new QmpResult(w =>
        {
            w.WriteStartObject();
            if (entries.Count > 0)
            {
                w.WriteStartArray("unflushed");
                foreach (var (device, file, reason) in entries)
                {
                    w.WriteStartObject();
                    w.WriteString("device", device);
                    w.WriteString("file", file);
                    w.WriteString("reason", reason);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            more?.Invoke(w);
            w.WriteEndObject();
        });
    }

    /// <summary>
    /// transaction (qapi/transaction.json): blockdev-snapshot-sync and the bitmap actions QEMU takes,
    /// at one point in time. With a snapshot, the bitmap actions happen at its switch, under its drain
    /// (<see cref="Drive.SnapshotAsync(IReadOnlyList{SnapshotRequest}, IReadOnlyList{BitmapAction}?, CancellationToken)"/>);
    /// without one, they take their own drain. Every action is checked before anything happens: one
    /// that fails leaves everything as it was.
    /// </summary>
    private async Task<QmpResult> TransactionAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        var snapshots = new List<QmpArguments>();
        var bitmaps = new List<(string Type, QmpArguments Data)>();
        string? first = null;
        foreach (var action in args.Array("actions").EnumerateArray())
        {
            if (action.ValueKind != JsonValueKind.Object
                || !action.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            {
                throw new QmpException("Each transaction action needs a 'type'");
            }

            string name = type.GetString()!;
            first ??= name;
            if (!TransactionActions.ContainsKey(name))
            {
                throw new QmpException($"Transaction action '{name}' is not supported ({string.Join(", ", TransactionActions.Keys)})");
            }

            var data = new QmpArguments(action.TryGetProperty("data", out var d) ? d : default);
            if (name == "blockdev-snapshot-sync")
            {
                snapshots.Add(data);
            }
            else
            {
                bitmaps.Add((name, data));
            }
        }

        CheckCompletionMode(args, first);
        if (snapshots.Count == 0)
        {
            return bitmaps.Count == 0 ? QmpResult.Empty : await ChangeBitmapsAsync(bitmaps.Select(b => ToBitmapAction(b.Type, b.Data)).ToList(), cancellationToken);
        }

        return await SnapshotAsync(snapshots, cancellationToken, bitmaps);
    }

    /// <summary>
    /// The transaction's optional properties (qapi/transaction.json, TransactionProperties): only
    /// completion-mode, whose "grouped" only backup jobs take (blockdev.c, qmp_transaction), and no
    /// backup is a transaction action here, so "grouped" is refused with QEMU's words, naming the
    /// first action, as long as there is one.
    /// </summary>
    private static void CheckCompletionMode(QmpArguments args, string? firstAction)
    {
        if (args.OptionalElement("properties") is not { ValueKind: JsonValueKind.Object } properties
            || !properties.TryGetProperty("completion-mode", out var mode))
        {
            return;
        }

        string value = mode.GetString()!;
        if (value is not ("individual" or "grouped"))
        {
            throw new QmpException($"Parameter 'completion-mode' does not accept value '{value}'");
        }

        if (value == "grouped" && firstAction is not null)
        {
            throw new QmpException($"Action '{firstAction}' does not support Transaction property completion-mode = grouped");
        }
    }

    /// <summary>
    /// block-commit: merges <c>top</c> (default: the drive's active image) into <c>base</c> (default:
    /// the deepest image, as in QEMU) as a job (<see cref="Drive.PrepareMergeAsync"/>). An active merge
    /// reports ready and waits for job-complete, as in QEMU; a merge of a lower layer completes on its own.
    /// </summary>
    private async Task<QmpResult> CommitAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        var drive = FindDrive(args.String("device"));
        long speed = args.OptionalInt("speed", 0);
        if (speed < 0)
        {
            throw new QmpException("Parameter 'speed' expects a non-negative value");
        }

        var options = new CommitJobOptions
        {
            Speed = speed,
            AutoComplete = args.OptionalBool("auto-complete", false),
            OnError = ToErrorPolicy(args, "on-error", "a merge that skips what it could not copy loses data"),
        };
        bool autoDismiss = args.OptionalBool("auto-dismiss", true);
        string id = args.OptionalString("job-id") ?? drive.Id;
        await _daemon.GraphLock.WaitAsync(cancellationToken);
        try
        {
            IBlockNode? top = args.OptionalString("top") is { } topName
                ? drive.FindLayer(topName) ?? throw new QmpException($"Top image file {topName} not found")
                : null;
            IBlockNode? baseNode = args.OptionalString("base") is { } baseName
                ? drive.FindLayer(baseName) ?? throw new QmpException($"Can't find '{baseName}' in the backing chain")
                : null;
            if (_daemon.Jobs.Find(id) is not null)
            {
                throw new QmpException($"Job ID '{id}' already in use");
            }

            var job = await drive.PrepareMergeAsync(id, top, baseNode, options, cancellationToken);
            _daemon.Jobs.Add(new BlockJobEntry(job, drive, speed, autoDismiss));
            job.Start();
            return QmpResult.Empty;
        }
        finally
        {
            _daemon.GraphLock.Release();
        }
    }

    private QmpResult QueryJobs()
    {
        var jobs = _daemon.Jobs.All;
        return new QmpResult(w =>
        {
            w.WriteStartArray();
            foreach (var entry in jobs)
            {
                var job = entry.Job;
                w.WriteStartObject();
                w.WriteString("id", job.Id);
                w.WriteString("type", job.Type);
                w.WriteString("status", BlockJobs.StatusName(job.Status));
                w.WriteNumber("current-progress", job.CurrentProgress);
                w.WriteNumber("total-progress", job.TotalProgress);
                if (job.Error is { } error)
                {
                    w.WriteString("error", error);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    private QmpResult QueryBlockJobs()
    {
        var jobs = _daemon.Jobs.All;
        return new QmpResult(w =>
        {
            w.WriteStartArray();
            foreach (var entry in jobs)
            {
                var job = entry.Job;
                var status = job.Status;
                w.WriteStartObject();
                BlockJobs.WriteBlockJobFields(w, entry);
                w.WriteBoolean("busy", status == JobStatus.Running);
                w.WriteBoolean("paused", status == JobStatus.Paused);
                w.WriteString("io-status", job.IoFailed ? "failed" : "ok");
                w.WriteBoolean("ready", status == JobStatus.Ready);
                w.WriteString("status", BlockJobs.StatusName(status));
                w.WriteBoolean("auto-finalize", true);
                w.WriteBoolean("auto-dismiss", entry.AutoDismiss);
                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    private QmpResult JobAction(QmpArguments args, string command, Action<Job> action)
    {
        string id = command.StartsWith("block-job-", StringComparison.Ordinal) ? args.String("device") : args.String("id");
        var entry = _daemon.Jobs.Find(id) ?? throw new QmpException($"Job '{id}' not found", command.StartsWith("block-", StringComparison.Ordinal) ? "DeviceNotActive" : "GenericError");
        action(entry.Job);
        return QmpResult.Empty;
    }

    private QmpResult Dismiss(QmpArguments args)
    {
        string id = args.String("id");
        if (_daemon.Jobs.Find(id) is null)
        {
            throw new QmpException($"Job '{id}' not found");
        }

        return _daemon.Jobs.Dismiss(id) ? QmpResult.Empty : throw new QmpException($"Job '{id}' has not concluded and cannot be dismissed");
    }
}
