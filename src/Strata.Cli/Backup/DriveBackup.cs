using System.Runtime.ExceptionServices;
using System.Text.Json.Nodes;
using Strata.Backup;
using Strata.Backup.Stores;
using Strata.Daemon.Control;

namespace Strata.Cli.Backup;

/// <summary>
/// <c>backup create SET --drive ID</c>: a whole live backup through the daemon's control socket,
/// the bitmaps managed by Strata in a state folder on the daemon's host (<see cref="DriveState"/>:
/// SET itself for a set in a folder; docs/backup.md, "A live drive").
/// </summary>
/// <remarks>
/// One transaction adds the next bitmap (it starts exactly at the snapshot), disables the previous
/// one (saved Frozen: it then holds exactly the writes between the last point and this snapshot)
/// and switches the drive to an overlay in the state's work folder, so the image below is frozen. The
/// frozen image is backed up as <c>--image</c> does, through the set's store (a folder, or an
/// object store that stages and uploads it), with the previous bitmap for an incremental and the new
/// one recorded as the next point's base. Whatever happens after the snapshot, the drive is merged
/// back onto its image; only after a point is made are the older managed bitmaps removed from the
/// drive. A journal (<see cref="DriveJournal"/>) written before the transaction lets the next run
/// finish what a run that died left (<see cref="DriveRecovery"/>); a failed copy hands the previous
/// bitmap's bits back to the new one (QEMU's bitmap-mode=on-success), so the next point is still
/// incremental. A set and its state differ only in where they are: this flow is the same for both.
/// </remarks>
internal static class DriveBackup
{
    /// <summary>How long a merge back may take before the backup gives up waiting (the job goes on in the daemon).</summary>
    private static readonly TimeSpan MergeTimeout = TimeSpan.FromMinutes(30);

    /// <param name="store">The set, opened for writing: the point is made through it.</param>
    /// <param name="state">Where the managed bitmaps, the overlay and the journal live (<see cref="IBackupStore.OpenDriveState"/>).</param>
    /// <param name="target">The drive, the daemon's control socket, and whether to freeze the guest writing the drive around the snapshot (x-strata-freeze; the daemon's warnings go to <paramref name="error"/>).</param>
    /// <param name="phases">Hears one line per phase with its time (<c>-v</c>), the writer's phases among them.</param>
    public static async Task<BackupResult> RunAsync(IBackupStore store, DriveState state, (string Drive, string Socket, bool Freeze) target, TextWriter error,
        Action<string>? phases, Func<Func<Action<double>, Task>, Task> progress, CancellationToken cancellationToken)
    {
        var clock = new BackupPhases(phases);
        var (drive, socket, freeze) = target;

        // A point a stopped upload left is the set's last before anything is decided on it: the
        // journal's hand-back and the incremental both go by the set's last point.
        if (await store.FinishInterruptedAsync(cancellationToken: cancellationToken) is { Resume: { } resumed })
        {
            error.WriteLine(BackupCli.Prefix + resumed + "; this run makes its own point on it");
        }

        var set = store.Set;
        await using var qmp = await QmpClient.ConnectAsync(socket, cancellationToken);
        var carried = await DriveRecovery.RecoverAsync(qmp, set, state, drive, error, cancellationToken);
        var bitmaps = await DriveBitmapsAsync(qmp, drive, cancellationToken);
        var previous = carried is not null ? new ManagedBitmap(carried.Name!, carried.File)
            : set.Last?.Tracking.Where(t => t.Name is not null && state.IsManaged(t.File)).Select(t => new ManagedBitmap(t.Name!, t.File)).FirstOrDefault();
        string? unusable = previous is null
            ? set.Last is { } last ? $"point {last.Point} recorded no bitmap kept in {state.BitmapFolder} (it was made with --image, or with another state folder or host)" : null
            : Unusable(bitmaps, previous, drive, state);
        bool incremental = previous is not null && unusable is null;

        string name = $"backup-{set.Points.Count:D4}-{Guid.NewGuid().ToString("N")[..8]}";
        string bitmapFile = Path.Combine(state.BitmapFolder, name + ".dbmp");
        string overlay = Path.Combine(state.WorkFolder, name + ".qcow2");
        var journal = new DriveJournal
        {
            Point = set.Points.Count, Drive = drive, Overlay = overlay, Bitmap = new ManagedBitmap(name, bitmapFile), Previous = incremental ? previous : null,
        };
        journal.Write(state);
        clock.Lap("drive: recover, query and journal");
        await SwitchAsync(qmp, state, journal, freeze, error, cancellationToken);
        clock.Lap("drive: transaction (bitmaps and snapshot)");

        BackupResult? made = null;
        Exception? failure = null;
        try
        {
            string frozen = await FrozenImageAsync(qmp, drive, overlay, cancellationToken);
            var request = new BackupRequest
            {
                Image = frozen,
                Bitmap = incremental ? previous!.File : null,
                BitmapName = incremental ? previous!.Name : null,
                Carried = incremental ? carried : null,
                FullReason = unusable,
                Drive = drive,
                Tracking = [bitmapFile],
                Phases = phases,
            };
            await progress(async percent => made = await store.CreateAsync(request, percent, cancellationToken));
        }
        catch (Exception e)
        {
            failure = e;
        }

        clock.Lap("drive: backup of the frozen image");
        await MergeBackAsync(qmp, drive, overlay, made, failure);
        clock.Lap("drive: merge back");
        journal = journal with { Overlay = null };
        journal.Write(state);
        if (made is null)
        {
            await DriveRecovery.HandBackAsync(qmp, store.Set, state, journal, error);
            ExceptionDispatchInfo.Throw(failure!);
        }

        await RemoveOlderBitmapsAsync(qmp, drive, state, name, cancellationToken);
        DriveJournal.Delete(state);
        clock.Lap("drive: older bitmaps removed");
        return made;
    }

    internal static async Task<JsonObject> DriveAsync(QmpClient qmp, string drive, CancellationToken cancellationToken)
    {
        var drives = (await qmp.ExecuteAsync("query-block", null, cancellationToken))?.AsArray() ?? [];
        return drives.OfType<JsonObject>().FirstOrDefault(d => d["device"]?.GetValue<string>() == drive)
            ?? throw new QmpException($"the daemon has no drive '{drive}'", "DeviceNotFound");
    }

    internal static async Task<List<JsonObject>> DriveBitmapsAsync(QmpClient qmp, string drive, CancellationToken cancellationToken) =>
        [.. ((await DriveAsync(qmp, drive, cancellationToken))["inserted"]?["dirty-bitmaps"]?.AsArray() ?? []).OfType<JsonObject>()];

    internal static JsonObject? FindBitmap(List<JsonObject> bitmaps, string name) => bitmaps.FirstOrDefault(b => b["name"]?.GetValue<string>() == name);

    internal static bool Is(JsonObject? bitmap, string flag) => bitmap?[flag]?.GetValue<bool>() == true;

    /// <summary>
    /// block-commit of the active overlay into the frozen image, completed when ready (as merge_disk),
    /// then the overlay deleted. A merge job an earlier run started and did not see through is taken over.
    /// </summary>
    internal static async Task MergeBackAsync(QmpClient qmp, string drive, string overlay)
    {
        string job = $"backup-merge-{drive}";
        using var timeout = new CancellationTokenSource(MergeTimeout);
        var running = ((await qmp.ExecuteAsync("query-jobs", null, timeout.Token))?.AsArray() ?? []).OfType<JsonObject>()
            .FirstOrDefault(j => j["id"]?.GetValue<string>() == job);
        switch (running?["status"]?.GetValue<string>())
        {
            case null:
                await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = drive, ["job-id"] = job }, timeout.Token);
                break;
            case "ready":
                await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = job }, timeout.Token);
                break;
        }

        while (true)
        {
            var e = await qmp.Events.ReadAsync(timeout.Token);
            var data = e["data"] as JsonObject;
            if (data?["device"]?.GetValue<string>() != job && data?["id"]?.GetValue<string>() != job)
            {
                continue;
            }

            switch (e["event"]?.GetValue<string>())
            {
                case "BLOCK_JOB_READY":
                    await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = job }, timeout.Token);
                    break;
                case "BLOCK_JOB_COMPLETED" when (data?["error"]?.GetValue<string>()) is { } failure:
                    throw new BackupException($"merging {overlay} back failed: {failure}; drive '{drive}' stays on it");
                case "BLOCK_JOB_COMPLETED":
                    File.Delete(overlay);
                    return;
                case "BLOCK_JOB_CANCELLED":
                    throw new BackupException($"merging {overlay} back was cancelled; drive '{drive}' stays on it");
            }
        }
    }

    private static JsonObject Action(string type, JsonObject data) => new() { ["type"] = type, ["data"] = data };

    /// <summary>
    /// Why <paramref name="previous"/> cannot give an incremental: its file must be in the state folder
    /// (a state folder lost, or another host's, has not got it), and the bitmap on the drive, recording and consistent.
    /// </summary>
    private static string? Unusable(List<JsonObject> bitmaps, ManagedBitmap previous, string drive, DriveState state) => FindBitmap(bitmaps, previous.Name) switch
    {
        _ when !File.Exists(previous.File) => $"bitmap file {previous.File} is not in the state folder {state.Folder} (lost, or the set was last backed up from another host)",
        null => $"bitmap '{previous.Name}' is not on drive '{drive}' (was the daemon started again without --bitmap drive={drive},file={previous.File}?)",
        var b when Is(b, "inconsistent") => $"bitmap '{previous.Name}' on drive '{drive}' is inconsistent",
        var b when !Is(b, "recording") => $"bitmap '{previous.Name}' on drive '{drive}' is not recording",
        _ => null,
    };

    /// <summary>The transaction: the new bitmap, the previous one disabled, the snapshot onto the journal's overlay.</summary>
    private static async Task SwitchAsync(QmpClient qmp, DriveState state, DriveJournal journal, bool freeze, TextWriter error, CancellationToken cancellationToken)
    {
        // JsonNode: the untyped Add, which the native build accepts (the generic one needs run-time code).
        var actions = new JsonArray
        {
            (JsonNode)Action("block-dirty-bitmap-add", new JsonObject { ["node"] = journal.Drive, ["name"] = journal.Bitmap.Name, ["file"] = journal.Bitmap.File }),
        };
        if (journal.Previous is { } previous)
        {
            actions.Add((JsonNode)Action("block-dirty-bitmap-disable", new JsonObject { ["node"] = journal.Drive, ["name"] = previous.Name }));
        }

        var snapshot = new JsonObject { ["device"] = journal.Drive, ["snapshot-file"] = journal.Overlay, ["format"] = "qcow2" };
        if (freeze)
        {
            snapshot["x-strata-freeze"] = true;
        }

        actions.Add((JsonNode)Action("blockdev-snapshot-sync", snapshot));
        JsonNode? switched;
        try
        {
            switched = await qmp.ExecuteAsync("transaction", new JsonObject { ["actions"] = actions }, cancellationToken);
        }
        catch (QmpException)
        {
            // The daemon refused it whole: nothing changed, nothing to recover.
            DriveJournal.Delete(state);
            throw;
        }

        if (switched?["warnings"] is JsonArray warnings)
        {
            foreach (var warning in warnings)
            {
                error.WriteLine($"strata backup: warning: {warning}");
            }
        }
    }

    /// <summary>Merges the overlay back whatever the copy did; a merge that fails says what was made and that the next run finishes it.</summary>
    private static async Task MergeBackAsync(QmpClient qmp, string drive, string overlay, BackupResult? made, Exception? failure)
    {
        try
        {
            await MergeBackAsync(qmp, drive, overlay);
        }
        catch (Exception e) when (e is BackupException or QmpException or IOException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            string before = made is not null ? $"point {made.Manifest.Point} was made, but " : failure is not null ? $"{failure.Message}; then " : "";
            throw new BackupException(before + $"merging the snapshot's overlay back failed ({e.Message}): drive '{drive}' stays on {overlay} "
                + "until the next backup create merges it back", e);
        }
    }

    /// <summary>The image the snapshot froze: the backing image of the overlay, as query-block names it.</summary>
    private static async Task<string> FrozenImageAsync(QmpClient qmp, string drive, string overlay, CancellationToken cancellationToken)
    {
        var image = (await DriveAsync(qmp, drive, cancellationToken))["inserted"]?["image"];
        if (image?["filename"]?.GetValue<string>() != overlay)
        {
            throw new BackupException($"drive '{drive}' is not on the snapshot's overlay {overlay} any more");
        }

        return image["backing-image"]?["filename"]?.GetValue<string>() ?? throw new BackupException($"drive '{drive}': the overlay has no backing image");
    }

    /// <summary>Removes from the drive every bitmap kept in the state's bitmap folder but the one just added, and deletes their files.</summary>
    private static async Task RemoveOlderBitmapsAsync(QmpClient qmp, string drive, DriveState state, string keep, CancellationToken cancellationToken)
    {
        foreach (var bitmap in await DriveBitmapsAsync(qmp, drive, cancellationToken))
        {
            string? name = bitmap["name"]?.GetValue<string>();
            string? file = bitmap["file"]?.GetValue<string>();
            if (name is null || name == keep || file is null || !state.IsManaged(file))
            {
                continue;
            }

            await qmp.ExecuteAsync("block-dirty-bitmap-remove", new JsonObject { ["node"] = drive, ["name"] = name }, cancellationToken);
            File.Delete(file);
        }
    }
}
