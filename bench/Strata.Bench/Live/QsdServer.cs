using System.Text.Json.Nodes;

namespace Strata.Bench.Live;

/// <summary>
/// qemu-storage-daemon at its defaults (aio=threads, page cache), exporting node "disk0" as "disk".
/// QEMU addresses nodes, not drives: a snapshot names the current top node and names the new one;
/// a commit names the top; the NBD export follows the top through both (bdrv_append, the commit's
/// final node replacement).
/// </summary>
internal sealed class QsdServer(string folder) : LiveServer("qsd", folder)
{
    // Node names from the base up; the last is the top.
    private readonly List<string> _chain = [];
    private int _snapshots;

    protected override (string Program, IEnumerable<string> Args) CommandLine(DiskImage disk)
    {
        List<string> args = ["--blockdev", $"driver=file,node-name=f0,filename={disk.Path}"];
        if (disk.Backing is null)
        {
            args.AddRange(["--blockdev", $"driver={disk.Format},node-name=disk0,file=f0"]);
            _chain.Add("disk0");
        }
        else
        {
            args.AddRange(["--blockdev", $"driver=file,node-name=fb,filename={disk.Backing}", "--blockdev", "driver=raw,node-name=base0,file=fb"]);
            args.AddRange(["--blockdev", $"driver={disk.Format},node-name=disk0,file=f0,backing=base0"]);
            _chain.AddRange(["base0", "disk0"]);
        }

        args.AddRange([
            "--nbd-server", $"addr.type=unix,addr.path={NbdSocket}",
            "--export", "type=nbd,id=e0,node-name=disk0,name=disk,writable=on",
            "--chardev", $"socket,id=m0,path={QmpSocket},server=on,wait=off", "--monitor", "chardev=m0",
        ]);
        return ("qemu-storage-daemon", args);
    }

    public override string BitmapNode => _chain[^1];

    protected override JsonObject SnapshotArguments(string overlay) => new()
    {
        ["node-name"] = _chain[^1],
        ["snapshot-file"] = overlay,
        ["snapshot-node-name"] = $"snap{_snapshots + 1}",
        ["format"] = "qcow2",
    };

    protected override JsonObject CommitArguments(string jobId) => new() { ["job-id"] = jobId, ["device"] = _chain[^1] };

    protected override void OnSnapshot() => _chain.Add($"snap{++_snapshots}");

    protected override void OnMerged() => _chain.RemoveRange(1, _chain.Count - 1);
}
