using System.Text.Json;
using Strata.Block;

namespace Strata.Daemon.Control;

/// <summary>
/// The commands of the control socket, spelled as in QEMU's qapi schema: <c>query-block</c>,
/// <c>cont</c>, <c>quit</c> (issue 3); later issues add snapshot, merge and bitmap commands here.
/// </summary>
public sealed partial class QmpCommands
{
    private readonly StorageDaemon _daemon;

    public QmpCommands(StorageDaemon daemon) => _daemon = daemon;

    /// <summary>The commands this socket answers (query-commands).</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "qmp_capabilities", "query-commands", "query-block", "query-status", "query-jobs", "query-block-jobs",
        "stop", "cont", "quit", "blockdev-snapshot-sync", "transaction", "block-commit",
        "job-pause", "job-resume", "job-cancel", "job-complete", "job-dismiss",
        "block-job-pause", "block-job-resume", "block-job-cancel", "block-job-complete",
    ];

    public async Task<QmpResult> ExecuteAsync(string command, JsonElement arguments, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var args = new QmpArguments(arguments);
        try
        {
            return command switch
            {
                "query-commands" => QueryCommands(),
                "query-block" => QueryBlock(),
                "query-status" => QueryStatus(),
                "query-jobs" => QueryJobs(),
                "query-block-jobs" => QueryBlockJobs(),
                "stop" => await StopAsync(cancellationToken),
                "cont" => Cont(),
                "quit" => QmpResult.Empty,
                "blockdev-snapshot-sync" => await SnapshotAsync([args], cancellationToken),
                "transaction" => await TransactionAsync(args, cancellationToken),
                "block-commit" => await CommitAsync(args, cancellationToken),
                "job-pause" or "block-job-pause" => JobAction(args, command, j => j.Pause()),
                "job-resume" or "block-job-resume" => JobAction(args, command, j => j.Resume()),
                "job-cancel" or "block-job-cancel" => JobAction(args, command, j => j.Cancel()),
                "job-complete" or "block-job-complete" => JobAction(args, command, j => j.Complete()),
                "job-dismiss" => Dismiss(args),
                _ => QmpResult.Error($"The command {command} has not been found", "CommandNotFound"),
            };
        }
        catch (QmpException e)
        {
            return QmpResult.Error(e.Message, e.ErrorClass);
        }
        catch (BlockException e)
        {
            return QmpResult.Error(e.Message);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            // A command that fails for any foreseen reason answers with an error; the connection and
            // the daemon carry on (DESIGN.md rule 5).
            return QmpResult.Error(e.Message);
        }
    }

    private static QmpResult QueryCommands() => new(w =>
    {
        w.WriteStartArray();
        foreach (var name in Names)
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    });

    private async Task<QmpResult> StopAsync(CancellationToken cancellationToken)
    {
        await _daemon.PauseAsync(cancellationToken);
        return QmpResult.Empty;
    }

    private QmpResult Cont()
    {
        _daemon.Resume();
        return QmpResult.Empty;
    }

    private QmpResult QueryStatus()
    {
        bool paused = _daemon.IsPaused;
        return new QmpResult(w =>
        {
            w.WriteStartObject();
            w.WriteBoolean("running", !paused);
            w.WriteString("status", paused ? "paused" : "running");
            w.WriteEndObject();
        });
    }

    /// <summary>query-block (qapi/block-core.json, BlockInfo): one entry per drive, its chain as "image".</summary>
    private QmpResult QueryBlock()
    {
        var drives = _daemon.Drives.ToList();
        return new QmpResult(w =>
        {
            w.WriteStartArray();
            foreach (var drive in drives)
            {
                var root = drive.Top;
                int depth = 0;
                for (var node = root.Backing; node is not null; node = node.Backing)
                {
                    depth++;
                }

                w.WriteStartObject();
                w.WriteString("device", drive.Id);
                w.WriteBoolean("locked", false);
                w.WriteBoolean("removable", false);
                w.WriteString("type", "unknown");
                w.WriteStartObject("inserted");
                w.WriteString("file", root.FileName ?? "");
                w.WriteString("node-name", drive.Id);
                w.WriteString("drv", root.DriverName);
                w.WriteBoolean("ro", drive.ReadOnly);
                w.WriteBoolean("encrypted", false);
                w.WriteNumber("backing_file_depth", depth);
                if (root.Backing?.FileName is { } backing)
                {
                    w.WriteString("backing_file", backing);
                }

                w.WriteString("cache-mode", drive.Spec.Direct ? "none" : "writeback");
                w.WritePropertyName("image");
                WriteImage(w, root);
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    private static void WriteImage(Utf8JsonWriter w, IBlockNode node)
    {
        w.WriteStartObject();
        w.WriteString("filename", node.FileName ?? "");
        w.WriteString("format", node.DriverName);
        w.WriteNumber("virtual-size", node.Size);
        if (node.Backing is { } backing)
        {
            w.WriteString("backing-filename", backing.FileName ?? "");
            w.WritePropertyName("backing-image");
            WriteImage(w, backing);
        }

        w.WriteEndObject();
    }
}
