using System.Collections.Concurrent;
using Strata.TestKit;

namespace Strata.Guest.Tests;

public sealed class GuestChannelTests
{
    private static readonly GuestChannelOptions Quick = new()
    {
        Agent = new GuestAgentOptions { CallTimeout = TimeSpan.FromSeconds(2), FreezeTimeout = TimeSpan.FromSeconds(2) },
        HealthInterval = TimeSpan.FromMilliseconds(100),
        MinReconnectDelay = TimeSpan.FromMilliseconds(20),
        MaxReconnectDelay = TimeSpan.FromMilliseconds(200),
    };

    [Fact]
    public async Task BeginSnapshotFreezesUnderAnArmedWatchAndEndSnapshotThawsAndDisarms()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { FileSystems = 3 };
        var watch = new RecordingWatch();
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick, watch);
        var events = Record(channel);

        var frozen = await channel.BeginSnapshotAsync(new object());
        Assert.True(agent.Frozen);
        Assert.Equal(3, frozen.FrozenFileSystems);
        Assert.Equal(GuestFreezeState.Frozen, channel.State);

        var thawed = await channel.EndSnapshotAsync();
        Assert.False(agent.Frozen);
        Assert.Equal(3, thawed.ThawedFileSystems);
        Assert.False(thawed.Expired);
        Assert.Equal(["arm", "lease", "disarm"], watch.Lines);
        Assert.True(watch.LastArm.WithConnection);
        Assert.Contains(events, e => e.Kind == GuestEventKind.Frozen && e.Count == 3);
        Assert.Contains(events, e => e.Kind == GuestEventKind.Thawed && e.Reason == "end_snapshot");
    }

    [Fact]
    public async Task ASecondBeginSnapshotIsRefusedNotNested()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick);
        await channel.BeginSnapshotAsync(new object());

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => channel.BeginSnapshotAsync(new object()));

        Assert.Contains("freezes do not nest", e.Message);
        Assert.Single(agent.Commands, c => c == "guest-fsfreeze-freeze");
        await channel.EndSnapshotAsync();
        Assert.Equal(1, agent.Thaws);
    }

    [Fact]
    public async Task TheLeaseThawsAndASnapshotLaterInThatFreezeIsRefused()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick with { Lease = TimeSpan.FromMilliseconds(200) });
        await channel.BeginSnapshotAsync(new object());

        await agent.WaitUntilAsync(a => a.Thaws == 1, "the lease's thaw");
        await WaitForStateAsync(channel, GuestFreezeState.Expired);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => channel.EnterSnapshotAsync(freeze: false));
        var ended = await channel.EndSnapshotAsync();

        Assert.Contains("lease", refused.Message);
        Assert.True(ended.Expired);
        await using var scope = await channel.EnterSnapshotAsync(freeze: false);
        Assert.False(scope.Frozen);
    }

    [Fact]
    public async Task AFreezeThatTimesOutIsThawed()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.HangOnFreeze };
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick);

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => channel.BeginSnapshotAsync(new object()));

        Assert.Equal(GuestAgentErrorKind.Timeout, e.Kind);
        Assert.False(agent.Frozen);
        Assert.Equal(1, agent.Thaws);
        Assert.Equal(GuestFreezeState.Thawed, channel.State);
    }

    [Fact]
    public async Task AnAgentWhoseStatusContradictsItsFreezeIsThawedAndRefused()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.LieAboutFreeze };
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick);

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => channel.BeginSnapshotAsync(new object()));

        Assert.Contains("its status says thawed", e.Message);
        Assert.Equal("guest-fsfreeze-thaw", agent.Commands[^1]);
        Assert.Equal(GuestFreezeState.Thawed, channel.State);
    }

    [Fact]
    public async Task AFreezeTheAgentRefusesIsFollowedByAThawAnywayAndRefused()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.RefuseFreeze };
        var watch = new RecordingWatch();
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick, watch);

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => channel.BeginSnapshotAsync(new object()));

        // The thaw sent anyway finds nothing frozen: nothing is left to retry.
        Assert.Contains("has been disabled", e.Message);
        Assert.Equal("guest-fsfreeze-thaw", agent.Commands[^1]);
        Assert.Equal(["arm", "disarm"], watch.Lines);
        Assert.Equal(GuestFreezeState.Thawed, channel.State);
    }

    [Fact]
    public async Task AnAgentThatFailsTheFreezeButLeavesFileSystemsFrozenIsThawedAndRefused()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.FailFreezeLeavingFrozen };
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick);

        var e = await RefusedAndThawedAsync(agent, channel);

        Assert.Equal(GuestAgentErrorKind.AgentError, e.Kind);
        Assert.Contains("failed to freeze /data", e.Message);
    }

    [Fact]
    public async Task AFreezeListThatFreezesFewerFileSystemsThanAskedIsThawedAndRefused()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mounts = ["/", "/data"] };
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick) { Mountpoints = ["/data", "/srv"] };

        var e = await RefusedAndThawedAsync(agent, channel);

        Assert.Contains("froze 1 of the 2 file systems asked for (/data, /srv)", e.Message);
        Assert.Contains("guest-fsfreeze-freeze-list", agent.Commands);
    }

    [Fact]
    public async Task AFreezeListThatFreezesEveryMountpointAskedHoldsTheGuestFrozen()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mounts = ["/", "/data"] };
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick) { Mountpoints = ["/data"] };

        var frozen = await channel.BeginSnapshotAsync(new object());

        Assert.Equal(1, frozen.FrozenFileSystems);
        Assert.True(agent.Frozen);
        await channel.EndSnapshotAsync();
    }

    [Fact]
    public async Task WhenTheOwnerGoesAwayOnlyItsOwnFreezeIsThawed()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick);
        var owner = new object();
        await channel.BeginSnapshotAsync(owner);

        await channel.ReleaseOwnerAsync(new object(), "someone else left");
        Assert.True(agent.Frozen);
        await channel.ReleaseOwnerAsync(owner, "the control client disconnected");

        Assert.False(agent.Frozen);
        Assert.Equal(GuestFreezeState.Thawed, channel.State);
    }

    [Fact]
    public async Task AThawThatCouldNotBeDeliveredIsRetriedWhenTheAgentAnswersAgain()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick);
        await channel.BeginSnapshotAsync(new object());
        agent.Mode = FakeAgentMode.Hang;

        await Assert.ThrowsAsync<GuestAgentException>(() => channel.EndSnapshotAsync());
        Assert.True(agent.Frozen);
        agent.Mode = FakeAgentMode.Normal;
        channel.Start();

        await agent.WaitUntilAsync(a => !a.Frozen, "the retried thaw");
        Assert.Equal(1, agent.Thaws);
    }

    [Fact]
    public async Task TheChannelReportsALostAgentAndReconnectsWhenTheSocketComesBack()
    {
        using var dir = new TempFolder("gc");
        string socket = dir.File("qga.sock");
        var agent = new FakeGuestAgent(socket);
        await using var channel = new GuestChannel("vm0", socket, ["d0"], Quick);
        var events = Record(channel);
        channel.Start();
        await WaitForAsync(() => events.Count(e => e.Kind == GuestEventKind.Connected) == 1, "the first connect");
        Assert.Equal("fake-1.0", channel.AgentVersion);

        await agent.DisposeAsync();
        await WaitForAsync(() => events.Any(e => e.Kind == GuestEventKind.Lost), "the loss");
        await using var restarted = new FakeGuestAgent(socket);

        await WaitForAsync(() => events.Count(e => e.Kind == GuestEventKind.Connected) == 2, "the reconnect");
        await channel.PingAsync();
    }

    [Fact]
    public async Task StoppingTheChannelThawsAFrozenGuest()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick);
        await channel.BeginSnapshotAsync(new object());

        Assert.Null(await channel.StopAsync());

        Assert.False(agent.Frozen);
    }

    [Fact]
    public async Task ASnapshotScopeWithoutAnAgentIsCrashConsistentNotAnError()
    {
        using var dir = new TempFolder("gc");
        await using var channel = new GuestChannel("vm0", dir.File("none.sock"), ["d0"], Quick);

        await using var scope = await channel.EnterSnapshotAsync(freeze: true);

        Assert.False(scope.Frozen);
        Assert.Contains("crash-consistent only", scope.Warning);
    }

    [Fact]
    public async Task ASnapshotScopeFreezesAndThawsWhenItEnds()
    {
        using var dir = new TempFolder("gc");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using var channel = new GuestChannel("vm0", agent.SocketPath, ["d0"], Quick);

        var scope = await channel.EnterSnapshotAsync(freeze: true);
        Assert.True(agent.Frozen);
        Assert.Null(await scope.ExitAsync());

        Assert.False(agent.Frozen);
    }

    /// <summary>A begin_snapshot the agent fails: its one-line error, once the guest was thawed (once) and the channel says so.</summary>
    private static async Task<GuestAgentException> RefusedAndThawedAsync(FakeGuestAgent agent, GuestChannel channel)
    {
        var e = await Assert.ThrowsAsync<GuestAgentException>(() => channel.BeginSnapshotAsync(new object()));
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(agent.Frozen);
        Assert.Equal(1, agent.Thaws);
        Assert.Equal(GuestFreezeState.Thawed, channel.State);
        return e;
    }

    private static ConcurrentQueue<GuestEvent> Record(GuestChannel channel)
    {
        var events = new ConcurrentQueue<GuestEvent>();
        channel.EventRaised += events.Enqueue;
        return events;
    }

    private static Task WaitForStateAsync(GuestChannel channel, GuestFreezeState state) =>
        WaitForAsync(() => channel.State == state, $"state {state}");

    private static async Task WaitForAsync(Func<bool> done, string what)
    {
        for (int i = 0; i < 1500; i++)
        {
            if (done())
            {
                return;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"never saw {what}");
    }
}
