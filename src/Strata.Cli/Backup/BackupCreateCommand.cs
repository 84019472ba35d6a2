using System.CommandLine;
using Strata.Backup;
using Strata.Backup.Stores;
using Strata.Cli.Img;
using Strata.Daemon;

namespace Strata.Cli.Backup;

/// <summary>`strata backup create SET (--image FILE [--bitmap FILE.dbmp] | --drive ID [--qmp SOCKET] [--state DIR] [--freeze]) [-p] [-v] [--output=json]`.</summary>
public static class BackupCreateCommand
{
    public static Command Build(TextWriter output, TextWriter error)
    {
        var set = new Argument<string>("SET") { Description = "the backup set's folder (created when missing), or s3://BUCKET/PREFIX" };
        var image = new Option<string?>("--image") { Description = "back up this image file, offline (read-only, shared: a daemon may hold it frozen)" };
        var bitmap = new Option<string?>("--bitmap") { Description = "with --image: a dirty_bitmap file holding every write since the set's last point: copy only its dirty extents" };
        var drive = new Option<string?>("--drive") { Description = "back up this drive of a running daemon, live, with bitmaps Strata manages" };
        var qmp = new Option<string?>("--qmp") { Description = "with --drive: the daemon's control socket (default: qmp.sock in the runtime folder)" };
        var state = new Option<string?>("--state")
        {
            Description = "with --drive and an s3:// set: the local folder for the managed bitmaps, the overlay and the journal "
                + "(default: $XDG_STATE_HOME/strata/drive-state/BUCKET-HASH, ~/.local/state/… when unset)",
        };
        var freeze = new Option<bool>("--freeze")
        {
            Description = "with --drive: freeze the guest that writes the drive (serve --guest) around the snapshot; without an agent the point is crash-consistent, and stderr says so",
        };
        var progress = new Option<bool>("-p") { Description = "show progress" };
        var verbose = new Option<bool>("-v", "--verbose") { Description = "tell on stderr how long each phase of the backup took" };
        var format = new Option<string?>("--output") { Description = "human (default) or json" };
        var command = new Command("create", """
            Adds a point to the backup set SET.

            --image FILE [--bitmap FILE.dbmp]: reads the image (frozen: a snapshot keeps it unchanged)
            and makes a full point, or with a bitmap an incremental point on the set's last point that
            copies only the bitmap's dirty extents. The bitmap must prove it holds every write since
            that point: complete (saved, not tracked now), of the image's size, seen tracking when the
            last point was taken and saved exactly once since. Otherwise the point is full, and one
            line on stderr says why. Tracked dirty_bitmap files beside the bitmap (or the image) are
            recorded as candidates for the next incremental (the seed's t1 beside t0).

            --drive ID [--qmp SOCKET] [--state DIR]: a live backup through the daemon. One transaction adds a new
            bitmap (SET/bitmaps/), stops the previous one and snapshots the drive into SET/work/; the
            frozen image is copied (full the first time, incremental after), then merged back. If the
            copy fails the drive is merged back anyway and the set is left as it was. With --freeze the
            guest's agent freezes its file systems for the snapshot and thaws right after it
            (docs/guest.md): the point is consistent for the guest's file systems, not only after a crash.
            For an s3:// set the bitmaps, the overlay and the journal live on this host in the state
            folder (--state DIR, or one per set and endpoint under $XDG_STATE_HOME/strata/drive-state/),
            which must last from one backup to the next: without it (lost, another host's) the next
            point is full, and one line on stderr says why.

            Exit status: 0 the point was added; 1 error (one line on stderr, the set unchanged).
            """)
        {
            set, image, bitmap, drive, qmp, state, freeze, progress, verbose, format,
        };
        command.SetAction((result, cancellationToken) => BackupCli.RunAsync(error, async () =>
        {
            bool json = OutputFormat.IsJson(result.GetValue(format));
            string folder = result.GetValue(set)!;
            string? imagePath = result.GetValue(image);
            string? driveId = result.GetValue(drive);
            if ((imagePath is null) == (driveId is null))
            {
                throw new CliException("give either --image FILE or --drive ID");
            }

            if (driveId is not null && result.GetValue(bitmap) is not null)
            {
                throw new CliException("--bitmap goes with --image; with --drive the bitmaps are Strata's");
            }

            if (imagePath is not null && (result.GetValue(qmp) is not null || result.GetValue(freeze) || result.GetValue(state) is not null))
            {
                throw new CliException("--qmp, --state and --freeze go with --drive");
            }

            if (result.GetValue(state) is not null && !S3Location.IsS3(folder))
            {
                throw new CliException("--state goes with an s3:// set: a set in a folder keeps its live-backup state in that folder");
            }

            bool showProgress = result.GetValue(progress) && !json;
            Action<string>? phases = result.GetValue(verbose) ? line => error.WriteLine(BackupCli.Prefix + line) : null;
            BackupResult made = null!;
            await using var store = await BackupStores.OpenAsync(folder, forWriting: true, cancellationToken);
            if (driveId is not null)
            {
                var driveState = store.OpenDriveState(result.GetValue(state));
                string socket = result.GetValue(qmp) ?? Path.Combine(SocketDefaults.Directory(), SocketDefaults.QmpSocketName);
                made = await DriveBackup.RunAsync(store, driveState, (driveId, socket, result.GetValue(freeze)), error, phases,
                    work => BackupCli.ProgressAsync(output, error, showProgress, "backup", work), cancellationToken);
            }
            else
            {
                string? bitmapPath = result.GetValue(bitmap);
                var request = new BackupRequest
                {
                    Image = imagePath!,
                    Bitmap = bitmapPath,
                    Phases = phases,

                    // An image in a store (an RBD snapshot) has no folder to look for tracked bitmaps in.
                    Tracking = bitmapPath is null && !ImgContext.Drivers.Locate(imagePath!).IsFile ? [] : null,
                };
                await BackupCli.ProgressAsync(output, error, showProgress, "backup", async percent =>
                    made = await store.CreateAsync(request, percent, cancellationToken));
            }

            Report(made, store.Locate(made.Manifest.Image), json, output, error);
            return BackupCli.Ok;
        }));
        return command;
    }

    private static void Report(BackupResult made, string image, bool json, TextWriter output, TextWriter error)
    {
        var m = made.Manifest;
        if (json)
        {
            output.WriteLine(OutputFormat.Json(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("point", m.Point);
                w.WriteString("kind", m.Kind == BackupKind.Full ? "full" : "incremental");
                w.WriteString("image", image);
                w.WriteString("fallback", m.Fallback);
                w.WriteNumber("extents", m.Extents.Count);
                w.WriteNumber("bytes-copied", made.BytesCopied);
                w.WriteStartArray("removed");
                made.Removed.ToList().ForEach(w.WriteStringValue);
                w.WriteEndArray();
                w.WriteString("resume", made.Resume);
                w.WriteEndObject();
            }));
            return;
        }

        if (made.Resume is not null)
        {
            error.WriteLine(BackupCli.Prefix + made.Resume);
        }

        if (made.Removed.Count > 0)
        {
            error.WriteLine(BackupCli.Prefix + $"removed what an interrupted backup left: {string.Join(", ", made.Removed)}");
        }

        if (m.Fallback is not null)
        {
            error.WriteLine(BackupCli.Prefix + $"full backup instead of incremental: {m.Fallback}");
        }

        string kind = m.Kind == BackupKind.Full ? "full" : $"incremental on point {m.Point - 1}";
        output.WriteLine($"point {m.Point} ({kind}): {m.Extents.Count} extent(s), {BackupCli.Bytes(made.BytesCopied)} copied into {image}");
    }
}
