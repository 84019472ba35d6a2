using System.Text.Json;
using Strata.Block;

namespace Strata.Daemon.Control;

/// <summary>
/// The commands of the control socket, spelled as in QEMU's qapi schema: <c>query-block</c>,
/// <c>cont</c>, <c>quit</c> (issue 3); later issues add snapshot, merge and bitmap commands here.
/// </summary>
public sealed class QmpCommands
{
    private readonly StorageDaemon _daemon;

    public QmpCommands(StorageDaemon daemon) => _daemon = daemon;

    public QmpResult Execute(string command, JsonElement arguments)
    {
        ArgumentNullException.ThrowIfNull(command);
        return command switch
        {
            "query-block" => QueryBlock(),
            "query-status" => QueryStatus(),
            "cont" => Cont(),
            "quit" => QmpResult.Empty,
            _ => QmpResult.Error($"The command {command} has not been found", "CommandNotFound"),
        };
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
            w.WriteString("status", paused ? "prelaunch" : "running");
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
                var root = drive.Root;
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
