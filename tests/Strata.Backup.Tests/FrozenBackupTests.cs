using System.Text.Json;
using Strata.TestKit;

namespace Strata.Backup.Tests;

/// <summary><c>backup create --drive --freeze</c>: the guest's agent freezes its file systems around the backup's snapshot.</summary>
public sealed class FrozenBackupTests
{
    private const long Size = 16 << 20;

    [Fact]
    public async Task WithAGuestTheSnapshotIsTakenFrozenAndTheGuestIsThawedRightAfter()
    {
        using var folder = new TempFolder("bfreeze");
        await using var agent = new FakeGuestAgent(folder.File("qga.sock"));
        await using var daemon = await StartAsync(folder, "--guest", $"id=vm0,socket={agent.SocketPath},drives=d0");

        var made = await Processes.StrataAsync(["backup", "create", folder.File("set"), "--drive", "d0", "--qmp", folder.File("qmp.sock"), "--freeze", "--output=json"]);

        Assert.True(made.ExitCode == 0, made.ToString());
        Assert.DoesNotContain("crash-consistent", made.Stderr, StringComparison.Ordinal);
        var commands = agent.Commands;
        int freeze = commands.ToList().IndexOf("guest-fsfreeze-freeze");
        Assert.True(freeze >= 0 && commands.Skip(freeze).Contains("guest-fsfreeze-thaw"), $"agent saw: {string.Join(", ", commands)}");
        Assert.False(agent.Frozen);
        Assert.Equal(1, agent.Thaws);
        using var report = JsonDocument.Parse(made.Stdout);
        Assert.Equal("full", report.RootElement.GetProperty("kind").GetString());
    }

    [Fact]
    public async Task WithoutAGuestTheBackupIsMadeAndSaysItIsCrashConsistentOnly()
    {
        using var folder = new TempFolder("bfreeze");
        await using var daemon = await StartAsync(folder);

        var made = await Processes.StrataAsync(["backup", "create", folder.File("set"), "--drive", "d0", "--qmp", folder.File("qmp.sock"), "--freeze"]);

        Assert.True(made.ExitCode == 0, made.ToString());
        Assert.Contains("strata backup: warning:", made.Stderr, StringComparison.Ordinal);
        Assert.Contains("crash-consistent", made.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FreezeGoesWithDriveOnly()
    {
        using var folder = new TempFolder("bfreeze");
        string disk = folder.File("disk.img");
        Processes.Ok("qemu-img", "create", "-f", "raw", disk, $"{Size}");

        var made = await Processes.StrataAsync(["backup", "create", folder.File("set"), "--image", disk, "--freeze"]);

        Assert.Equal(1, made.ExitCode);
        Assert.Contains("--qmp, --state and --freeze go with --drive", made.Stderr, StringComparison.Ordinal);
    }

    private static async Task<BackgroundProcess> StartAsync(TempFolder folder, params string[] extra)
    {
        string disk = folder.File("disk.img");
        Processes.Ok("qemu-img", "create", "-f", "raw", disk, $"{Size}");
        var daemon = ServeProcess.Start(folder.Path, null,
        [
            "--drive", $"id=d0,file={disk},format=raw", "--nbd", $"unix:{folder.File("nbd.sock")}", "--qmp", $"unix:{folder.File("qmp.sock")}", .. extra,
        ]);
        await daemon.WaitForFileAsync(folder.File("qmp.sock"));
        await daemon.WaitForFileAsync(folder.File("nbd.sock"));
        return daemon;
    }
}
