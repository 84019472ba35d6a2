using Strata.Cli.Monitor;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>The console's guest commands (guest_cmd, info guests, change -l --freeze) against an in-process daemon and the fake agent.</summary>
public sealed class GuestConsoleTests
{
    [Fact]
    public async Task TheSeedWorkflowFreezesSwitchesAndThawsFromTheConsole()
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock"));
        d.Daemon.AddGuest(new GuestSpec("vm0", agent.SocketPath, [LiveDaemon.DriveId]));
        string overlay = d.Folder.File("tmp_disk.img");

        var (code, stdout, stderr) = await RunAsync(d, $"""
            guest_cmd ping
            guest_cmd begin_snapshot
            info guests
            change -l {LiveDaemon.DriveId} file={overlay}
            guest_cmd end_snapshot vm0
            """);

        Assert.True(code == 0, stderr);
        Assert.Contains("vm0: 2 file systems frozen in", stdout);
        Assert.Contains("frozen (2 file systems)", stdout);
        Assert.Contains($"writes now go to {overlay}", stdout);
        Assert.Contains("vm0: 2 file systems thawed after", stdout);
        Assert.False(agent.Frozen);
    }

    [Fact]
    public async Task ChangeWithFreezeReportsTheStepsAndWithoutAGuestWarnsCrashConsistent()
    {
        await using var d = await LiveDaemon.StartAsync(8 << 20, "data");
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock"));
        d.Daemon.AddGuest(new GuestSpec("vm0", agent.SocketPath, [LiveDaemon.DriveId]));

        var (code, stdout, stderr) = await RunAsync(d, $"""
            change -l --freeze {LiveDaemon.DriveId} file={d.Folder.File("a.img")}
            change -l --freeze data file={d.Folder.File("b.img")}
            """);

        Assert.True(code == 0, stderr);
        Assert.Contains("vm0: 2 file systems frozen for the switch", stdout);
        Assert.Contains("freeze ", stdout);
        Assert.Contains("Warning: no guest writes data: the snapshot is crash-consistent only", stderr);
        Assert.Equal(1, agent.Thaws);
    }

    [Fact]
    public async Task GuestCmdWithoutAGuestIsAOneLineError()
    {
        await using var d = await LiveDaemon.StartAsync();

        var (code, _, stderr) = await RunAsync(d, "guest_cmd begin_snapshot");

        Assert.NotEqual(0, code);
        Assert.Equal("Error: the daemon has no guest (strata serve --guest, or x-strata-guest-add)", stderr.Trim());
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(LiveDaemon d, string script)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await MonitorCommand.RunAsync(d.QmpSocket, new StringReader(script), output, error, interactive: false);
        return (code, output.ToString(), error.ToString());
    }
}
