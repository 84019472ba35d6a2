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

    private static Task AddGuestAsync(QmpClient qmp, FakeGuestAgent agent, params string[] drives) =>
        qmp.ExecuteAsync("x-strata-guest-add", new JsonObject
        {
            ["id"] = "vm0", ["socket"] = agent.SocketPath,
            ["drives"] = new JsonArray([.. (drives.Length == 0 ? [LiveDaemon.DriveId] : drives).Select(id => (JsonNode)id)]),
        });
}
