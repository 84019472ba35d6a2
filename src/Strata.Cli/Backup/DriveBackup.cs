using System.Text.Json.Nodes;
using Strata.Backup;
using Strata.Daemon.Control;

namespace Strata.Cli.Backup;

/// <summary>
/// <c>backup create SET --drive ID</c>: a whole live backup through the daemon's control socket,
/// the bitmaps managed by Strata in SET/bitmaps (docs/backup.md, "A live drive").
/// </summary>
/// <remarks>
/// One transaction adds the next bitmap (it starts exactly at the snapshot), disables the previous
/// one (saved Frozen: it then holds exactly the writes between the last point and this snapshot)
/// and switches the drive to an overlay in SET/work, so the image below is frozen. The frozen image
/// is backed up as <c>--image</c> does, with the previous bitmap for an incremental and the new one
/// recorded as the next point's base. Whatever happens after the snapshot, the drive is merged back
/// onto its image; only after a point is made are the older managed bitmaps removed from the drive.
/// After a failure the previous bitmap stays disabled, so the next backup is full: never wrong.
/// </remarks>
internal static class DriveBackup
{
    /// <summary>How long a merge back may take before the backup gives up waiting (the job goes on in the daemon).</summary>
    private static readonly TimeSpan MergeTimeout = TimeSpan.FromMinutes(30);

    /// <param name="freeze">Freeze the guest writing the drive around the snapshot (x-strata-freeze); the daemon's warnings go to <paramref name="error"/>.</param>
    public static async Task<BackupResult> RunAsync(string folder, string drive, string socket, bool freeze, TextWriter error,
        Func<Func<Action<double>, Task>, Task> progress, CancellationToken cancellationToken)
    {
        var set = BackupSet.Open(folder, create: true);
        Directory.CreateDirectory(set.BitmapFolder);
        Directory.CreateDirectory(set.WorkFolder);
        await using var qmp = await QmpClient.ConnectAsync(socket, cancellationToken);
        var bitmaps = await DriveBitmapsAsync(qmp, drive, cancellationToken);
        var previous = set.Last?.Tracking.FirstOrDefault(t => t.Name is not null && IsManaged(set, t.File));
        bool incremental = previous is not null && bitmaps.Any(b => b["name"]?.GetValue<string>() == previous.Name
            && b["recording"]?.GetValue<bool>() == true && b["inconsistent"]?.GetValue<bool>() != true);

        string name = $"backup-{set.Points.Count:D4}-{Guid.NewGuid().ToString("N")[..8]}";
        string bitmapFile = Path.Combine(set.BitmapFolder, name + ".dbmp");
        string overlay = Path.Combine(set.WorkFolder, name + ".qcow2");
        // JsonNode: the untyped Add, which the native build accepts (the generic one needs run-time code).
        var actions = new JsonArray { (JsonNode)Action("block-dirty-bitmap-add", new JsonObject { ["node"] = drive, ["name"] = name, ["file"] = bitmapFile }) };
        if (incremental)
        {
            actions.Add((JsonNode)Action("block-dirty-bitmap-disable", new JsonObject { ["node"] = drive, ["name"] = previous!.Name }));
        }

        var snapshot = new JsonObject { ["device"] = drive, ["snapshot-file"] = overlay, ["format"] = "qcow2" };
        if (freeze)
        {
            snapshot["x-strata-freeze"] = true;
        }

        actions.Add((JsonNode)Action("blockdev-snapshot-sync", snapshot));
        var switched = await qmp.ExecuteAsync("transaction", new JsonObject { ["actions"] = actions }, cancellationToken);
        if (switched?["warnings"] is JsonArray warnings)
        {
            foreach (var warning in warnings)
            {
                error.WriteLine($"strata backup: warning: {warning}");
            }
        }

        BackupResult made;
        try
        {
            string frozen = await FrozenImageAsync(qmp, drive, overlay, cancellationToken);
            var request = new BackupRequest
            {
                Image = frozen,
                Bitmap = incremental ? previous!.File : null,
                BitmapName = incremental ? previous!.Name : null,
                Drive = drive,
                Tracking = [bitmapFile],
            };
            made = null!;
            await progress(async percent => made = await BackupWriter.CreateAsync(set.Folder, request, percent, cancellationToken));
        }
        finally
        {
            await MergeBackAsync(qmp, drive, overlay);
        }

        await RemoveOlderBitmapsAsync(qmp, drive, set, name, cancellationToken);
        return made;
    }

    private static JsonObject Action(string type, JsonObject data) => new() { ["type"] = type, ["data"] = data };

    private static bool IsManaged(BackupSet set, string file) =>
        string.Equals(Path.GetDirectoryName(Path.GetFullPath(file)), set.BitmapFolder, StringComparison.Ordinal);

    private static async Task<JsonObject> DriveAsync(QmpClient qmp, string drive, CancellationToken cancellationToken)
    {
        var drives = (await qmp.ExecuteAsync("query-block", null, cancellationToken))?.AsArray() ?? [];
        return drives.OfType<JsonObject>().FirstOrDefault(d => d["device"]?.GetValue<string>() == drive)
            ?? throw new QmpException($"the daemon has no drive '{drive}'", "DeviceNotFound");
    }

    private static async Task<List<JsonObject>> DriveBitmapsAsync(QmpClient qmp, string drive, CancellationToken cancellationToken) =>
        [.. ((await DriveAsync(qmp, drive, cancellationToken))["inserted"]?["dirty-bitmaps"]?.AsArray() ?? []).OfType<JsonObject>()];

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

    /// <summary>block-commit of the active overlay into the frozen image, completed when ready (as merge_disk), then the overlay deleted.</summary>
    private static async Task MergeBackAsync(QmpClient qmp, string drive, string overlay)
    {
        string job = $"backup-merge-{drive}";
        using var timeout = new CancellationTokenSource(MergeTimeout);
        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = drive, ["job-id"] = job }, timeout.Token);
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

    /// <summary>Removes from the drive every bitmap kept in SET/bitmaps but the one just added, and deletes their files.</summary>
    private static async Task RemoveOlderBitmapsAsync(QmpClient qmp, string drive, BackupSet set, string keep, CancellationToken cancellationToken)
    {
        foreach (var bitmap in await DriveBitmapsAsync(qmp, drive, cancellationToken))
        {
            string? name = bitmap["name"]?.GetValue<string>();
            string? file = bitmap["file"]?.GetValue<string>();
            if (name is null || name == keep || file is null || !IsManaged(set, file))
            {
                continue;
            }

            await qmp.ExecuteAsync("block-dirty-bitmap-remove", new JsonObject { ["node"] = drive, ["name"] = name }, cancellationToken);
            File.Delete(file);
        }
    }
}
