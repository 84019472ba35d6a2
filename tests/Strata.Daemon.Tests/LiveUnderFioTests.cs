using System.Text.Json;
using System.Text.Json.Nodes;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// A live snapshot and a live merge while two guests write: fio (its own process, over NBD) with
/// continuous read-back verification in one half of the disk, and the seeded model writer in the other.
/// </summary>
public sealed class LiveUnderFioTests
{
    private const long DiskSize = 64 << 20;
    private const long Half = DiskSize / 2;
    private const int FioSeconds = 10;

    [Fact]
    public async Task SnapshotAndMergeWhileFioVerifiesAndTheModelWriterWrites()
    {
        const int seed = 601;
        await using var d = await LiveDaemon.StartAsync(DiskSize);
        await using var guest = await d.ConnectNbdAsync();
        await using var qmp = await d.ConnectQmpAsync();

        // fio checks every block it wrote by reading it back a little later (verify_backlog), so
        // blocks written before a switch are read back after it; verify_fatal ends it at the first mismatch.
        var fio = Processes.RunAsync("fio", [
            "--name=guest", "--ioengine=nbd", $"--uri=nbd+unix:///{LiveDaemon.DriveId}?socket={d.NbdSocket}",
            "--rw=randwrite", "--bs=4k", "--iodepth=16", $"--offset={Half}", $"--size={Half}",
            "--verify=crc32c", "--verify_backlog=512", "--verify_fatal=1", $"--randseed={seed}",
            "--time_based", $"--runtime={FioSeconds}", "--output-format=json",
        ], ProcessOptions.Default);

        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() => d.WriteRandomlyAsync(guest, seed, 1_000_000, stop: stop.Token, end: Half));
        await Task.Delay(500);

        string overlay = d.Folder.File("tmp_disk.img");
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject { ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = overlay });
        await Task.Delay(1000);
        await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = LiveDaemon.DriveId, ["job-id"] = "merge0" });
        await qmp.WaitForEventAsync("BLOCK_JOB_READY", TimeSpan.FromSeconds(60));
        await qmp.ExecuteAsync("job-complete", new JsonObject { ["id"] = "merge0" });
        var completed = await qmp.WaitForEventAsync("BLOCK_JOB_COMPLETED", TimeSpan.FromSeconds(60));
        Assert.Null(completed["data"]!["error"]);
        Assert.False(fio.IsCompleted, $"fio ended before the merge did, so the merge was not made under its load; raise {nameof(FioSeconds)}");

        await stop.CancelAsync();
        int writes = await writer;
        var result = await fio;
        Assert.True(result.ExitCode == 0, $"fio found data it wrote changed or lost (seed {seed}):\n{result}");
        using var json = JsonDocument.Parse(result.Stdout[result.Stdout.IndexOf('{', StringComparison.Ordinal)..]);
        var job = json.RootElement.GetProperty("jobs")[0];
        Assert.Equal(0, job.GetProperty("error").GetInt32());
        Assert.True(job.GetProperty("read").GetProperty("io_bytes").GetInt64() > 0, "fio verified nothing");

        await guest.FlushAsync();
        var block = (await qmp.ExecuteAsync("query-block"))!.AsArray();
        Assert.Equal(d.BaseImage, block[0]!["inserted"]!["file"]!.GetValue<string>());
        Assert.Null(block[0]!["inserted"]!["backing_file"]);
        var onDisk = await File.ReadAllBytesAsync(d.BaseImage);
        Assert.True(d.Model.AsSpan(0, (int)Half).SequenceEqual(onDisk.AsSpan(0, (int)Half)),
            $"the base differs from the model after the merge (seed {seed}, {writes} model writes)");
    }
}
