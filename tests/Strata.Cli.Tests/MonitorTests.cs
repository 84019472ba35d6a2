using System.Text.Json.Nodes;
using Strata.Cli.Monitor;
using Strata.Daemon;
using Strata.Daemon.Control;
using Strata.Nbd.Client;
using Strata.Nbd.Transport;
using Strata.TestKit;

namespace Strata.Cli.Tests;

/// <summary>The (strata) console fed by a script on standard input, against an in-process daemon.</summary>
public sealed class MonitorTests
{
    [Fact]
    public async Task SnapshotInfoAndMergeRunFromAScript()
    {
        await using var served = await Served.StartAsync();
        string overlay = served.Folder.File("tmp_disk.img");
        var (code, stdout, stderr) = await RunAsync(served, $"""
            # the seed's console steps
            info jobs
            change -l ide0-hd0 file={overlay}
            info block
            merge_disk {overlay}
            info block
            """);
        Assert.True(code == 0, stderr);
        Assert.Contains("No active jobs", stdout, StringComparison.Ordinal);
        Assert.Contains($"writes now go to {overlay}", stdout, StringComparison.Ordinal);
        Assert.Contains($"Backing file:     {served.Disk}", stdout, StringComparison.Ordinal);
        Assert.Equal(served.Disk, served.Daemon.FindDrive(DriveSpec.HdaId)!.Root.FileName);
        Assert.Equal("", stderr);
    }

    [Fact]
    public async Task ChangeSaysWhenTheFrozenImageCouldNotBeFlushedAfterTheSwitch()
    {
        await using var served = await Served.StartAsync();
        var drive = served.Daemon.FindDrive(DriveSpec.HdaId)!;
        var old = await FaultInjectingNode.WrapRootAsync(drive.Gate, writesBeforeCrash: 0);
        string overlay = served.Folder.File("tmp_disk.img");
        var (code, stdout, stderr) = await RunAsync(served, $"change -l ide0-hd0 file={overlay}");
        Assert.Equal(0, code);
        Assert.Contains($"writes now go to {overlay}", stdout, StringComparison.Ordinal);
        Assert.Contains($"Warning: {served.Disk} is frozen but not yet flushed", stderr, StringComparison.Ordinal);
        old.CrashAfter(long.MaxValue);
    }

    [Fact]
    public async Task InfoJobsShowsARunningMergeWithItsProgressAndSpeedLimit()
    {
        await using var served = await Served.StartAsync();
        string overlay = served.Folder.File("tmp_disk.img");
        Assert.Equal(0, (await RunAsync(served, $"change -l ide0-hd0 file={overlay}")).Code);
        await using (var guest = await NbdClient.ConnectAsync(NbdEndpoint.Unix(served.Folder.File("nbd.sock")), DriveSpec.HdaId))
        {
            await guest.WriteAsync(0, new byte[4 << 20]);
        }

        // 64 KiB/s: the 4 MiB merge is still running when the console looks at it, once the job has
        // found what it has to copy.
        await using (var qmp = await QmpClient.ConnectAsync(served.Socket))
        {
            await qmp.ExecuteAsync("block-commit", new JsonObject { ["device"] = DriveSpec.HdaId, ["job-id"] = "merge0", ["speed"] = 65536 });
            for (int i = 0; i < 1000 && (await qmp.ExecuteAsync("query-block-jobs"))![0]!["len"]!.GetValue<long>() == 0; i++)
            {
                await Task.Delay(10);
            }
        }

        var (code, stdout, stderr) = await RunAsync(served, """
            info jobs
            {"execute": "job-cancel", "arguments": {"id": "merge0"}}
            """);
        Assert.True(code == 0, stderr);
        Assert.Matches(@"Type commit, device merge0: Completed \d+ of 4194304 bytes \(\d+%\), speed limit 65536 bytes/s, running", stdout);
    }

    [Fact]
    public async Task AFailingCommandStopsTheScriptWithExitStatusOneAndOneLineOfError()
    {
        await using var served = await Served.StartAsync();
        var (code, stdout, stderr) = await RunAsync(served, """
            info jobs
            change -l no-such-drive file=x.qcow2
            stop
            """);
        Assert.Equal(1, code);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("Error: ", line, StringComparison.Ordinal);
        Assert.Contains("no-such-drive", line, StringComparison.Ordinal);

        // The command after the failing one never ran: the guest is not held.
        Assert.Contains("No active jobs", stdout, StringComparison.Ordinal);
        Assert.Equal(0, served.Daemon.FindDrive(DriveSpec.HdaId)!.Gate.InFlight);
        Assert.False(await IsPausedAsync(served));
    }

    [Theory]
    [InlineData("frobnicate", "unknown command 'frobnicate'")]
    [InlineData("change -l ide0-hd0", "usage: change -l [--freeze] DEVICE file=PATH")]
    [InlineData("merge_disk", "usage: merge_disk PATH")]
    [InlineData("set_dirty ide0-hd0", "usage: set_dirty DEVICE FILE")]
    [InlineData("set_dirty nowhere t0.dbmp", "Cannot find device='nowhere'")]
    [InlineData("{\"execute\": ", "JSON parse error")]
    [InlineData("[1, 2]", "unknown command")]
    public async Task BadInputIsOneClearErrorAndTheDaemonStaysUp(string command, string message)
    {
        await using var served = await Served.StartAsync();
        var (code, _, stderr) = await RunAsync(served, command);
        Assert.Equal(1, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);

        var (after, stdout, _) = await RunAsync(served, "info jobs");
        Assert.Equal(0, after);
        Assert.Contains("No active jobs", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RawQmpJsonIsPassedThroughAndItsErrorFailsTheScript()
    {
        await using var served = await Served.StartAsync();
        var (code, stdout, _) = await RunAsync(served, """{"execute": "query-status"}""");
        Assert.Equal(0, code);
        Assert.Contains("\"running\"", stdout, StringComparison.Ordinal);

        (code, stdout, _) = await RunAsync(served, """{"execute": "no-such-command"}""");
        Assert.Equal(1, code);
        Assert.Contains("CommandNotFound", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HelpListsTheSeedCommands()
    {
        await using var served = await Served.StartAsync();
        var (code, stdout, _) = await RunAsync(served, "help");
        Assert.Equal(0, code);
        foreach (string command in new[] { "change -l", "merge_disk", "set_dirty", "info block", "info jobs", "stop", "cont", "quit" })
        {
            Assert.Contains(command, stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AMissingSocketIsOneLineAndExitStatusOne()
    {
        await using var served = await Served.StartAsync();
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await MonitorCommand.RunAsync(served.Folder.File("nothing.sock"), new StringReader("info jobs"), output, error, interactive: false);
        Assert.Equal(1, code);
        Assert.StartsWith("strata monitor: ", error.ToString(), StringComparison.Ordinal);
        Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(Served served, string script)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await MonitorCommand.RunAsync(served.Socket, new StringReader(script), output, error, interactive: false);
        return (code, output.ToString(), error.ToString());
    }

    private static async Task<bool> IsPausedAsync(Served served)
    {
        var (_, stdout, _) = await RunAsync(served, """{"execute": "query-status"}""");
        return stdout.Contains("\"paused\"", StringComparison.Ordinal);
    }

    /// <summary>A daemon serving a 16 MiB raw disk as ide0-hd0, with its control socket.</summary>
    private sealed class Served : IAsyncDisposable
    {
        private Served(TempFolder folder, StorageDaemon daemon)
        {
            Folder = folder;
            Daemon = daemon;
        }

        public TempFolder Folder { get; }

        public StorageDaemon Daemon { get; }

        public string Disk => Folder.File("foo.img");

        public string Socket => Folder.File("qmp.sock");

        public static async Task<Served> StartAsync()
        {
            var folder = new TempFolder();
            Processes.Run("qemu-img", "create", "-q", "-f", "raw", folder.File("foo.img"), "16M").AssertSuccess();
            var daemon = new StorageDaemon(new DaemonOptions
            {
                Drives = [new DriveSpec(DriveSpec.HdaId, folder.File("foo.img"), "raw")],
                NbdEndpoints = [NbdEndpoint.Unix(folder.File("nbd.sock"))],
                QmpEndpoints = [NbdEndpoint.Unix(folder.File("qmp.sock"))],
            });
            await daemon.StartAsync();
            return new Served(folder, daemon);
        }

        public async ValueTask DisposeAsync()
        {
            await Daemon.StopAsync();
            Folder.Dispose();
        }
    }
}
