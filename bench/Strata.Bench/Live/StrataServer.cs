using System.Text.Json.Nodes;

namespace Strata.Bench.Live;

/// <summary>
/// <c>strata serve -v</c>: the drive is addressed by its id, "disk", whatever image is on top; the
/// log says how long each snapshot held guest requests.
/// </summary>
internal sealed class StrataServer(string program, string[] prefix, string folder) : LiveServer("strata", folder)
{
    protected override (string Program, IEnumerable<string> Args) CommandLine(DiskImage disk) => (program,
    [
        .. prefix, "serve", "-v", "--drive", $"id=disk,file={disk.Path},format={disk.Format}",
        "--nbd", $"unix:{NbdSocket}", "--qmp", $"unix:{QmpSocket}", .. ExtraArguments,
    ]);

    /// <summary>More options for <c>strata serve</c> (a <c>--guest</c>, a <c>--bitmap-checkpoint</c>); set before the start.</summary>
    public IReadOnlyList<string> ExtraArguments { get; set; } = [];

    public override string BitmapNode => "disk";

    protected override JsonObject SnapshotArguments(string overlay) =>
        new() { ["device"] = "disk", ["snapshot-file"] = overlay, ["format"] = "qcow2" };

    protected override JsonObject CommitArguments(string jobId) =>
        new() { ["device"] = "disk", ["job-id"] = jobId };
}
