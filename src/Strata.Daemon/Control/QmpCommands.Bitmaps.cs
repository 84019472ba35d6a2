using System.Text.Json;
using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Daemon.Control;

/// <summary>
/// Dirty bitmap commands (qapi/block-core.json: block-dirty-bitmap-add, -remove, -clear, -enable,
/// -disable, -merge, x-debug-block-dirty-bitmap-sha256; query-block's dirty-bitmaps) and set_dirty's
/// own form, x-strata-set-dirty (docs/bitmaps.md). A bitmap belongs to a drive: <c>node</c> is the
/// drive's id or the file of any layer of its chain.
/// </summary>
public sealed partial class QmpCommands
{
    /// <summary>One bitmap command's arguments, as the engine takes them.</summary>
    private BitmapAction ToBitmapAction(string command, QmpArguments args)
    {
        var drive = ResolveNode(args.String("node"));
        return command switch
        {
            "block-dirty-bitmap-add" => new BitmapAction(BitmapActionKind.Add, drive, args.String("name"))
            {
                Granularity = args.OptionalInt("granularity", long.MinValue) is var g and not long.MinValue ? g : null,
                Persistent = args.OptionalBool("persistent", false),
                Disabled = args.OptionalBool("disabled", false),
                File = args.OptionalString("file") is { } file ? Path.GetFullPath(file) : null,
            },
            "block-dirty-bitmap-remove" => new BitmapAction(BitmapActionKind.Remove, drive, args.String("name")),
            "block-dirty-bitmap-clear" => new BitmapAction(BitmapActionKind.Clear, drive, args.String("name")),
            "block-dirty-bitmap-enable" => new BitmapAction(BitmapActionKind.Enable, drive, args.String("name")),
            "block-dirty-bitmap-disable" => new BitmapAction(BitmapActionKind.Disable, drive, args.String("name")),
            "block-dirty-bitmap-merge" => new BitmapAction(BitmapActionKind.Merge, drive, args.String("target"))
            {
                Sources = [.. args.Array("bitmaps").EnumerateArray().Select(b => ToBitmapSource(drive, b))],
            },
            _ => throw new QmpException($"The command {command} has not been found", "CommandNotFound"),
        };
    }

    /// <summary>A merge source (BlockDirtyBitmapOrStr): a name on the target's drive, or {node, name}.</summary>
    private BitmapSource ToBitmapSource(Drive target, JsonElement source)
    {
        if (source.ValueKind == JsonValueKind.String)
        {
            return new BitmapSource(target, source.GetString()!);
        }

        if (source.ValueKind != JsonValueKind.Object)
        {
            throw new QmpException("Invalid parameter type for 'bitmaps', expected: array of string or object");
        }

        Check(source, BitmapName, "bitmaps.");
        var named = new QmpArguments(source);
        return new BitmapSource(ResolveNode(named.String("node")), named.String("name"));
    }

    /// <summary>Runs bitmap actions as one change of their own (no snapshot), under the graph lock.</summary>
    private async Task<QmpResult> ChangeBitmapsAsync(IReadOnlyList<BitmapAction> actions, CancellationToken cancellationToken)
    {
        await _daemon.GraphLock.WaitAsync(cancellationToken);
        try
        {
            LogBitmapProblems(await Drive.ChangeBitmapsAsync(actions, cancellationToken));
            return QmpResult.Empty;
        }
        finally
        {
            _daemon.PublishBitmaps();
            _daemon.GraphLock.Release();
        }
    }

    /// <summary>x-debug-block-dirty-bitmap-sha256: QEMU's hash of the bits (<see cref="DirtyBitmap.Sha256"/>).</summary>
    private QmpResult BitmapSha256(QmpArguments args)
    {
        string name = args.String("name");
        var bitmap = ResolveNode(args.String("node")).Bitmaps.Find(name) ?? throw new QmpException($"Dirty bitmap '{name}' not found");
        string sha = bitmap.Bits.Sha256();
        return new QmpResult(w =>
        {
            w.WriteStartObject();
            w.WriteString("sha256", sha);
            w.WriteEndObject();
        });
    }

    /// <summary>
    /// x-strata-set-dirty {device, file}: the console's set_dirty. Adds a bitmap named after the file
    /// (t0.dbmp → t0) that records into it from now on (the file is created, at 64 KiB granularity,
    /// when missing); the drive's earlier set_dirty bitmaps go on recording until its next snapshot
    /// switch, where they stop and are saved Frozen (docs/bitmaps.md, "Hand-off").
    /// </summary>
    private async Task<QmpResult> SetDirtyAsync(QmpArguments args, CancellationToken cancellationToken)
    {
        var drive = FindDrive(args.String("device"));
        string file = Path.GetFullPath(args.String("file"));
        string name = BitmapSpec.NameOf(file);
        var result = await ChangeBitmapsAsync([new BitmapAction(BitmapActionKind.Add, drive, name) { File = file, HandOff = true }], cancellationToken);
        var bitmap = drive.Bitmaps.Find(name)!;
        _daemon.Log($"drive {drive.Id}: set_dirty: bitmap '{name}' records into {file} ({bitmap.Bits.Granularity}-byte granularity)");
        return result;
    }

    /// <summary>The drive whose id is <paramref name="node"/>, or whose chain has a layer with that file.</summary>
    private Drive ResolveNode(string node) =>
        _daemon.FindDrive(node)
        ?? _daemon.Drives.FirstOrDefault(d => d.FindLayer(node) is not null)
        ?? throw new QmpException($"Cannot find device='{node}' nor node-name='{node}'", "DeviceNotFound");

    private void LogBitmapProblems(IReadOnlyList<string> problems)
    {
        foreach (var problem in problems)
        {
            _daemon.Log($"bitmaps: {problem}");
        }
    }

    /// <summary>query-block's "dirty-bitmaps" of a drive (BlockDeviceInfo; each a BlockDirtyInfo).</summary>
    private static void WriteDirtyBitmaps(Utf8JsonWriter w, Drive drive)
    {
        w.WriteStartArray("dirty-bitmaps");
        foreach (var bitmap in drive.Bitmaps.All)
        {
            w.WriteStartObject();
            w.WriteString("name", bitmap.Name);
            w.WriteNumber("count", bitmap.Bits.DirtyBytes);
            w.WriteNumber("granularity", bitmap.Bits.Granularity);
            w.WriteBoolean("recording", bitmap.Recording);
            w.WriteBoolean("busy", bitmap.Busy);
            w.WriteBoolean("persistent", bitmap.Persistent);
            w.WriteBoolean("inconsistent", bitmap.Inconsistent);
            if (bitmap.File is { } file)
            {
                w.WriteString("file", file);
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }
}
