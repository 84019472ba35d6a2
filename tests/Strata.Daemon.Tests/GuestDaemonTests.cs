using System.Text.Json.Nodes;
using Strata.Daemon.Control;
using Strata.Guest;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>The daemon's guests over QMP, against the scripted fake agent (docs/guest.md).</summary>
public sealed class GuestDaemonTests
{
    private static readonly TimeSpan EventWait = TimeSpan.FromSeconds(10);

    private static readonly GuestChannelOptions Quick = new()
    {
        Agent = new GuestAgentOptions { CallTimeout = TimeSpan.FromSeconds(2), FreezeTimeout = TimeSpan.FromSeconds(2) },
        HealthInterval = TimeSpan.FromMilliseconds(200),
        MinReconnectDelay = TimeSpan.FromMilliseconds(20),
        MaxReconnectDelay = TimeSpan.FromMilliseconds(200),
    };

    [Fact]
    public async Task BeginAndEndSnapshotFreezeAndThawTheGuestWithEvents()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock")) { FileSystems = 3 };
        await using var qmp = await d.ConnectQmpAsync();
        await AddGuestAsync(qmp, agent);

        var begin = await qmp.ExecuteAsync("x-strata-guest-begin-snapshot", []);
        await qmp.WaitForEventAsync("GUEST_FROZEN", EventWait);
        Assert.True(agent.Frozen);
        Assert.Equal(3, begin!["filesystems"]!.GetValue<int>());
        Assert.Equal("frozen", (await qmp.ExecuteAsync("query-guests"))![0]!["state"]!.GetValue<string>());

        var again = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("x-strata-guest-begin-snapshot", new JsonObject { ["guest"] = "vm0" }));
        Assert.Contains("freezes do not nest", again.Message);

        var end = await qmp.ExecuteAsync("x-strata-guest-end-snapshot", []);
        await qmp.WaitForEventAsync("GUEST_THAWED", EventWait);
        Assert.False(agent.Frozen);
        Assert.Equal(3, end!["filesystems"]!.GetValue<int>());
        Assert.False(end["expired"]!.GetValue<bool>());
    }

    [Fact]
    public async Task AConsistentSnapshotFreezesSwitchesThawsAndReportsEachStep()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock"));
        await using var qmp = await d.ConnectQmpAsync();
        await AddGuestAsync(qmp, agent);

        var reply = await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img"), ["x-strata-freeze"] = true,
        });

        Assert.False(agent.Frozen);
        Assert.Equal(1, agent.Thaws);
        Assert.Equal(["guest-fsfreeze-freeze", "guest-fsfreeze-status", "guest-fsfreeze-thaw"],
            agent.Commands.Where(c => c.StartsWith("guest-fsfreeze", StringComparison.Ordinal)));
        Assert.Equal(2, reply!["guests"]![0]!["filesystems"]!.GetValue<int>());
        Assert.NotNull(reply["timings"]!["switch-ms"]);
        Assert.Equal(d.Folder.File("tmp.img"), (await qmp.ExecuteAsync("query-block"))![0]!["inserted"]!["file"]!.GetValue<string>());
    }

    [Fact]
    public async Task WithoutAGuestAConsistentSnapshotSwitchesWithACrashConsistentWarning()
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();

        var reply = await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img"), ["x-strata-freeze"] = true,
        });

        Assert.Contains("crash-consistent only", reply!["warnings"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task AGuestWhoseAgentDoesNotAnswerGetsACrashConsistentSnapshotNotAnError()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("x-strata-guest-add", new JsonObject
        {
            ["id"] = "vm0", ["socket"] = d.Folder.File("nothing.sock"), ["drives"] = new JsonArray(LiveDaemon.DriveId),
        });

        var reply = await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img"), ["x-strata-freeze"] = true,
        });

        Assert.Contains("crash-consistent only", reply!["warnings"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task AConsistentSnapshotThatLeavesOutOneOfTheGuestsDrivesIsRefusedBeforeAnyFreeze()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick }, 8 << 20, "data");
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock"));
        await using var qmp = await d.ConnectQmpAsync();
        await AddGuestAsync(qmp, agent, LiveDaemon.DriveId, "data");

        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img"), ["x-strata-freeze"] = true,
        }));

        Assert.Contains("also writes drive 'data'", e.Message);
        Assert.DoesNotContain("guest-fsfreeze-freeze", agent.Commands);
        Assert.False(File.Exists(d.Folder.File("tmp.img")));
    }

    [Fact]
    public async Task AfterTheLeaseThawedTheGuestASnapshotIsRefusedUntilEndSnapshot()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock"));
        await using var qmp = await d.ConnectQmpAsync();
        await AddGuestAsync(qmp, agent);
        await qmp.ExecuteAsync("x-strata-guest-begin-snapshot", new JsonObject { ["lease-ms"] = 100 });

        var thawed = await qmp.WaitForEventAsync("GUEST_THAWED", EventWait);
        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img"),
        }));
        var end = await qmp.ExecuteAsync("x-strata-guest-end-snapshot", []);

        Assert.Contains("lease", thawed["data"]!["reason"]!.GetValue<string>());
        Assert.Contains("would not be consistent", e.Message);
        Assert.True(end!["expired"]!.GetValue<bool>());
        Assert.False(agent.Frozen);
    }

    [Fact]
    public async Task WhenTheControlClientThatFrozeTheGuestDisconnectsTheGuestThaws()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock"));
        await using (var qmp = await d.ConnectQmpAsync())
        {
            await AddGuestAsync(qmp, agent);
            await qmp.ExecuteAsync("x-strata-guest-begin-snapshot", new JsonObject { ["lease-ms"] = 3_600_000 });
            Assert.True(agent.Frozen);
        }

        await agent.WaitUntilAsync(a => !a.Frozen, "the thaw after the client left");
        Assert.Equal(1, agent.Thaws);
    }

    [Fact]
    public async Task StoppingTheDaemonThawsAFrozenGuest()
    {
        var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock"));
        await using (var qmp = await d.ConnectQmpAsync())
        {
            await AddGuestAsync(qmp, agent);
            await d.Daemon.FindGuest(null).BeginSnapshotAsync(new object(), TimeSpan.FromHours(1));
        }

        await d.Daemon.StopAsync();

        Assert.False(agent.Frozen);
        await d.DisposeAsync();
    }

    [Fact]
    public async Task GuestsAreAddedListedAndRemovedAtRunTimeAndBadOnesAreRefused()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock"));
        await using var qmp = await d.ConnectQmpAsync();
        await AddGuestAsync(qmp, agent);

        var noDrive = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("x-strata-guest-add", new JsonObject
        {
            ["id"] = "vm1", ["socket"] = agent.SocketPath, ["drives"] = new JsonArray("nope"),
        }));
        var taken = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("x-strata-guest-add", new JsonObject
        {
            ["id"] = "vm1", ["socket"] = agent.SocketPath, ["drives"] = new JsonArray(LiveDaemon.DriveId),
        }));
        await qmp.WaitForEventAsync("GUEST_CONNECTED", EventWait);
        var listed = (await qmp.ExecuteAsync("query-guests"))![0]!;
        await qmp.ExecuteAsync("x-strata-guest-remove", new JsonObject { ["id"] = "vm0" });

        Assert.Contains("no drive has the id 'nope'", noDrive.Message);
        Assert.Contains("belongs to guest vm0", taken.Message);
        Assert.Equal("fake-1.0", listed["agent-version"]!.GetValue<string>());
        Assert.True(listed["responding"]!.GetValue<bool>());
        Assert.Empty((await qmp.ExecuteAsync("query-guests"))!.AsArray());
    }

    [Fact]
    public async Task AGuestCommandWithoutAGuestSaysSoInOneLine()
    {
        await using var d = await LiveDaemon.StartAsync();
        await using var qmp = await d.ConnectQmpAsync();

        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("x-strata-guest-ping", []));

        Assert.Contains("the daemon has no guest", e.Message);
    }

    [Fact]
    public async Task WhenTheDaemonIsKilledWhileTheGuestIsFrozenTheWatchThawsIt()
    {
        using var folder = new TempFolder("gk");
        await using var agent = new FakeGuestAgent(folder.File("qga.sock"));
        string image = folder.File("foo.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", image, "1M").AssertSuccess();
        await using var daemon = await DaemonProcess.StartAsync(folder.Path, image, "raw",
            "--guest", $"id=vm0,socket={agent.SocketPath},drives={LiveDaemon.DriveId}", "--guest-lease", "3600000");
        await using (var qmp = await daemon.ConnectQmpAsync())
        {
            await qmp.ExecuteAsync("x-strata-guest-begin-snapshot", []);
            Assert.True(agent.Frozen);

            await daemon.SignalAsync("KILL");
            await agent.WaitUntilAsync(a => !a.Frozen, "the freeze watch's thaw", TimeSpan.FromSeconds(60));
        }

        Assert.Equal(1, agent.Thaws);
        Assert.Equal("guest-fsfreeze-thaw", agent.Commands[^1]);
    }

    [Fact]
    public async Task WhenTheDaemonIsStoppedWhileTheGuestIsFrozenTheWatchThawsItAndTheDaemonNoticesWhenItResumes()
    {
        // The agent serves one client at a time, as QEMU's chardev does: while the stopped daemon
        // holds its connection, only the copy of it the watch was handed reaches the agent.
        using var folder = new TempFolder("gs");
        await using var agent = new FakeGuestAgent(folder.File("qga.sock")) { OneClientAtATime = true };
        string image = folder.File("foo.img");
        Processes.Run("qemu-img", "create", "-q", "-f", "raw", image, "1M").AssertSuccess();
        await using var daemon = await DaemonProcess.StartAsync(folder.Path, image, "raw",
            "--guest", $"id=vm0,socket={agent.SocketPath},drives={LiveDaemon.DriveId}");
        await using var qmp = await daemon.ConnectQmpAsync();
        await qmp.ExecuteAsync("x-strata-guest-begin-snapshot", new JsonObject { ["lease-ms"] = 500 });
        Assert.True(agent.Frozen);

        await daemon.SignalAsync("STOP");
        try
        {
            await agent.WaitUntilAsync(a => !a.Frozen, "the freeze watch's thaw while the daemon is stopped", TimeSpan.FromSeconds(30));
        }
        finally
        {
            await daemon.SignalAsync("CONT");
        }

        var thawed = await qmp.WaitForEventAsync("GUEST_THAWED", EventWait);
        var state = (await qmp.ExecuteAsync("query-guests"))![0]!["state"]!.GetValue<string>();
        var end = await qmp.ExecuteAsync("x-strata-guest-end-snapshot", []);
        var again = await qmp.ExecuteAsync("x-strata-guest-begin-snapshot", new JsonObject { ["lease-ms"] = 60_000 });
        Assert.True(agent.Frozen);
        await qmp.ExecuteAsync("x-strata-guest-end-snapshot", []);

        Assert.Contains("nothing frozen any more", thawed["data"]!["reason"]!.GetValue<string>());
        Assert.Equal("expired", state);
        Assert.True(end!["expired"]!.GetValue<bool>());
        Assert.Equal(2, again!["filesystems"]!.GetValue<int>());
        Assert.False(agent.Frozen);
        Assert.Equal(2, agent.Thaws);
        Assert.Equal(1, agent.ConnectionsAccepted);
    }

    [Theory]
    [InlineData(FakeAgentMode.RefuseFreeze, "has been disabled")]
    [InlineData(FakeAgentMode.FailFreezeLeavingFrozen, "failed to freeze /data")]
    [InlineData(FakeAgentMode.LieAboutFreeze, "its status says thawed")]
    public async Task AConsistentSnapshotWhoseFreezeTheAgentFailsIsRefusedInOneLineWithNothingSwitchedAndTheGuestThawed(FakeAgentMode mode, string why)
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock")) { Mode = mode };
        await using var qmp = await d.ConnectQmpAsync();
        await AddGuestAsync(qmp, agent);

        var e = await RefusedSnapshotAsync(qmp, d);

        Assert.Contains(why, e.Message);
        Assert.Contains("the consistent snapshot is refused", e.Message);
        Assert.Equal("guest-fsfreeze-thaw", agent.Commands[^1]);
        Assert.False(agent.Frozen);
        Assert.Equal(mode == FakeAgentMode.FailFreezeLeavingFrozen ? 1 : 0, agent.Thaws);
    }

    [Fact]
    public async Task AConsistentSnapshotIsRefusedWhenTheAgentFreezesFewerOfTheGuestsMountpointsThanAsked()
    {
        await using var d = await LiveDaemon.StartAsync(o => o with { GuestChannel = Quick });
        await using var agent = new FakeGuestAgent(d.Folder.File("qga.sock")) { Mounts = ["/"] };
        await using var qmp = await d.ConnectQmpAsync();
        await qmp.ExecuteAsync("x-strata-guest-add", new JsonObject
        {
            ["id"] = "vm0", ["socket"] = agent.SocketPath, ["drives"] = new JsonArray(LiveDaemon.DriveId), ["mountpoints"] = new JsonArray("/", "/data"),
        });

        var e = await RefusedSnapshotAsync(qmp, d);

        Assert.Contains("froze 1 of the 2 file systems asked for (/, /data)", e.Message);
        Assert.False(agent.Frozen);
        Assert.Equal(1, agent.Thaws);
        Assert.Equal(["/", "/data"], (await qmp.ExecuteAsync("query-guests"))![0]!["mountpoints"]!.AsArray().Select(m => m!.GetValue<string>()));
    }

    /// <summary>A consistent snapshot that must fail: the error, after checking it is one line, the drive still on its image and no overlay made.</summary>
    private static async Task<QmpException> RefusedSnapshotAsync(QmpClient qmp, LiveDaemon d)
    {
        var e = await Assert.ThrowsAsync<QmpException>(() => qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["device"] = LiveDaemon.DriveId, ["snapshot-file"] = d.Folder.File("tmp.img"), ["x-strata-freeze"] = true,
        }));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(d.BaseImage, (await qmp.ExecuteAsync("query-block"))![0]!["inserted"]!["file"]!.GetValue<string>());
        Assert.False(File.Exists(d.Folder.File("tmp.img")));
        return e;
    }

    private static Task AddGuestAsync(QmpClient qmp, FakeGuestAgent agent, params string[] drives) =>
        qmp.ExecuteAsync("x-strata-guest-add", new JsonObject
        {
            ["id"] = "vm0", ["socket"] = agent.SocketPath,
            ["drives"] = new JsonArray([.. (drives.Length == 0 ? [LiveDaemon.DriveId] : drives).Select(id => (JsonNode)id)]),
        });
}
