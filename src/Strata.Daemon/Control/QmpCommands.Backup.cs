using System.Text.Json;
using Strata.Block;
using Strata.Block.Backup;
using Strata.Daemon.Live;
using Strata.Formats;

namespace Strata.Daemon.Control;

/// <summary>
/// Push backups (qapi/block-core.json drive-backup, blockdev-backup, BackupCommon) and the subset of
/// blockdev-add and blockdev-del they need for their targets (docs/backup-push.md).
/// </summary>
public sealed partial class QmpCommands
{
    // Properties, not fields: the table in QmpCommands.cs reads them while the type initializes.
    private static QmpParameter[] BackupCommonParameters =>
    [
        new("job-id", QmpType.String), new("device", QmpType.String), new("sync", QmpType.String), new("speed", QmpType.Integer),
        new("bitmap", QmpType.String), new("bitmap-mode", QmpType.String), new("on-source-error", QmpType.String),
        new("on-target-error", QmpType.String), new("auto-finalize", QmpType.Boolean), new("auto-dismiss", QmpType.Boolean),
    ];

    private static QmpParameter[] DriveBackupParameters =>
        [.. BackupCommonParameters, new("target", QmpType.String), new("format", QmpType.String), new("mode", QmpType.String)];

    private static QmpParameter[] BlockdevBackupParameters => [.. BackupCommonParameters, new("target", QmpType.String)];

    private static QmpParameter[] BlockdevAddParameters =>
    [
        new("driver", QmpType.String), new("node-name", QmpType.String), new("file", QmpType.StringOrObject), new("filename", QmpType.String),
    ];

    private static readonly QmpParameter[] FileNodeParameters = [new("driver", QmpType.String), new("filename", QmpType.String)];

    /// <summary>
    /// drive-backup (the target is a file it creates, or opens with mode=existing, and closes when
    /// the job ends) and blockdev-backup (the target is a node blockdev-add made): a
    /// <see cref="BackupJob"/> on the drive, started at once.
    /// </summary>
    private async Task<QmpResult> BackupAsync(string command, QmpArguments args, CancellationToken cancellationToken)
    {
        var drive = FindDrive(args.String("device"));
        var options = ToBackupOptions(args);
        bool autoDismiss = args.OptionalBool("auto-dismiss", true);
        if (!args.OptionalBool("auto-finalize", true))
        {
            throw new QmpException("auto-finalize=false is not supported: a backup finalizes when its copy is done");
        }

        string id = args.OptionalString("job-id") ?? drive.Id;
        await _daemon.GraphLock.WaitAsync(cancellationToken);
        try
        {
            if (_daemon.Jobs.Find(id) is not null)
            {
                throw new QmpException($"Job ID '{id}' already in use");
            }

            BackupJob job;
            IDisposable? nodeUse = null;
            if (command == "blockdev-backup")
            {
                string name = args.String("target");
                var node = _daemon.Nodes.Find(name) ?? throw new QmpException($"Cannot find device='{name}' nor node-name='{name}'", "DeviceNotFound");
                var image = node.Image ?? throw new QmpException($"Node '{name}' is a file node: add a qcow2 or raw node over it as the target");
                if (node.Busy)
                {
                    throw new QmpException($"Node '{name}' is busy: it is in use");
                }

                nodeUse = node.Use();
                try
                {
                    job = drive.PrepareBackup(id, image, options);
                }
                catch
                {
                    nodeUse.Dispose();
                    throw;
                }
            }
            else
            {
                job = await PrepareDriveBackupAsync(drive, id, args, options, cancellationToken);
            }

            _daemon.Jobs.Add(new BlockJobEntry(job, drive, options.Speed, autoDismiss));
            if (nodeUse is not null)
            {
                job.ReleaseWhenFinished(nodeUse);
            }

            job.Start();

            // The reply says the point in time is fixed: nothing the guest writes after it is backed up.
            await Task.WhenAny(job.PointInTime, job.Completion);
            return QmpResult.Empty;
        }
        finally
        {
            _daemon.GraphLock.Release();
        }
    }

    /// <summary>
    /// drive-backup's target: created at the drive's size in <c>format</c> (default: the drive's top's)
    /// unless mode=existing; with sync=top its backing file is the top's backing file, as in QEMU. A
    /// target this command created is removed again when the job cannot be prepared.
    /// </summary>
    private static async Task<BackupJob> PrepareDriveBackupAsync(Drive drive, string id, QmpArguments args, BackupJobOptions options,
        CancellationToken cancellationToken)
    {
        string path = ImageOpener.FullName(args.String("target"));
        string format = args.OptionalString("format") ?? drive.Top.DriverName;
        bool existing = args.OptionalString("mode") switch
        {
            null or "absolute-paths" => false,
            "existing" => true,
            var other => throw new QmpException($"Invalid parameter 'mode': '{other}' (absolute-paths, existing)"),
        };
        if (!existing)
        {
            var backing = options.Sync == BackupSync.Top ? drive.Top.Backing : null;
            string? backingFile = backing?.FileName is { } b ? ImageOpener.FullName(b) : null;
            await ImageCreator.CreateAsync(path, format, drive.Top.Size, backingFile, backingFile is null ? null : backing!.DriverName,
                cancellationToken: cancellationToken);
        }

        IBlockNode? target = null;
        try
        {
            target = await ImageOpener.OpenAsync(path, new ImageOpenOptions { Format = format }, cancellationToken);
            return drive.PrepareBackup(id, target, options with { OwnsTarget = true });
        }
        catch
        {
            if (target is not null)
            {
                await target.DisposeAsync();
            }

            if (!existing)
            {
                File.Delete(path);
            }

            throw;
        }
    }

    /// <summary>BackupCommon's arguments as the engine takes them, with QEMU's rules on sync and bitmap modes.</summary>
    private static BackupJobOptions ToBackupOptions(QmpArguments args)
    {
        long speed = args.OptionalInt("speed", 0);
        if (speed < 0)
        {
            throw new QmpException("Parameter 'speed' expects a non-negative value");
        }

        string syncName = args.String("sync");
        var sync = syncName switch
        {
            "full" => BackupSync.Full,
            "top" => BackupSync.Top,
            "none" => BackupSync.None,
            "incremental" or "bitmap" => BackupSync.Bitmap,
            _ => throw new QmpException($"Parameter 'sync' does not accept value '{syncName}'"),
        };
        string? bitmap = args.OptionalString("bitmap");
        string? modeName = args.OptionalString("bitmap-mode");
        if (bitmap is null && modeName is not null)
        {
            throw new QmpException("Cannot specify bitmap sync mode without a bitmap");
        }

        if (syncName == "incremental")
        {
            modeName ??= "on-success";
            if (modeName != "on-success")
            {
                throw new QmpException($"Bitmap sync mode must be 'on-success' when using sync mode 'incremental'");
            }
        }

        if (bitmap is not null && modeName is null)
        {
            throw new QmpException("Bitmap sync mode must be given when providing a bitmap");
        }

        var mode = modeName switch
        {
            null or "on-success" => BitmapSyncMode.OnSuccess,
            "never" => BitmapSyncMode.Never,
            "always" => BitmapSyncMode.Always,
            _ => throw new QmpException($"Parameter 'bitmap-mode' does not accept value '{modeName}'"),
        };
        if (bitmap is not null && mode == BitmapSyncMode.Never && sync != BackupSync.Bitmap)
        {
            throw new QmpException($"Bitmap sync mode 'never' has no meaningful effect when combined with sync mode '{syncName}'");
        }

        return new BackupJobOptions
        {
            Sync = sync,
            Bitmap = bitmap,
            BitmapMode = mode,
            Speed = speed,
            OnSourceError = ToErrorPolicy(args, "on-source-error", BackupSkipsData),
            OnTargetError = ToErrorPolicy(args, "on-target-error", BackupSkipsData),
        };
    }

    private const string BackupSkipsData = "a backup that skips what it could not copy is silently wrong";

    /// <summary>A job's on-error argument <paramref name="name"/> (QEMU's BlockdevOnError); "ignore" is refused, <paramref name="ignoreLoses"/> says why.</summary>
    private static IoErrorPolicy ToErrorPolicy(QmpArguments args, string name, string ignoreLoses) => args.OptionalString(name) switch
    {
        null or "report" => IoErrorPolicy.Report,
        "stop" => IoErrorPolicy.Stop,
        "enospc" => IoErrorPolicy.StopOnNoSpace,
        "ignore" => throw new QmpException($"{name} 'ignore' is not supported: {ignoreLoses}"),
        var other => throw new QmpException($"Invalid parameter '{name}': '{other}' (report, stop, enospc)"),
    };

    /// <summary>
    /// blockdev-add, for a backup's target: <c>{driver: file, node-name, filename}</c>, or
    /// <c>{driver: qcow2|raw, node-name, file: NODE-NAME | {driver: file, filename}}</c>.
    /// </summary>
    private async Task<QmpResult> BlockdevAddAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        string driver = args.String("driver");
        string name = args.String("node-name");
        if (!BlockNodes.Drivers.Contains(driver))
        {
            throw new QmpException($"Driver '{driver}' is not supported by blockdev-add here ({string.Join(", ", BlockNodes.Drivers)})");
        }

        if (_daemon.FindDrive(name) is not null)
        {
            throw new QmpException($"node-name '{name}' is a drive's name");
        }

        if (driver == "file")
        {
            _daemon.Nodes.AddFile(name, args.String("filename"));
            return QmpResult.Empty;
        }

        if (args.OptionalString("filename") is not null)
        {
            throw new QmpException("Parameter 'filename' is unexpected");
        }

        var file = args.OptionalElement("file");
        string? fileNode = null;
        string? fileName = null;
        if (file.ValueKind == JsonValueKind.String)
        {
            fileNode = file.GetString();
        }
        else if (file.ValueKind == JsonValueKind.Object)
        {
            Check(file, FileNodeParameters, "file.");
            var fileArgs = new QmpArguments(file);
            if (fileArgs.String("driver") != "file")
            {
                throw new QmpException("Parameter 'file.driver' must be 'file'");
            }

            fileName = fileArgs.String("filename");
        }
        else
        {
            throw new QmpException("Parameter 'file' is missing");
        }

        await _daemon.Nodes.AddImageAsync(name, driver, fileName, fileNode, cancellationToken);
        return QmpResult.Empty;
    }

    /// <summary>blockdev-del: closes a node blockdev-add made that no job and no other node uses.</summary>
    private async Task<QmpResult> BlockdevDelAsync(QmpArguments args)
    {
        await _daemon.Nodes.RemoveAsync(args.String("node-name"));
        return QmpResult.Empty;
    }
}
