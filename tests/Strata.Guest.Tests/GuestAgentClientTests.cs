using Strata.TestKit;

namespace Strata.Guest.Tests;

public sealed class GuestAgentClientTests
{
    private static readonly GuestAgentOptions Quick = new()
    {
        CallTimeout = TimeSpan.FromSeconds(2), FreezeTimeout = TimeSpan.FromSeconds(2), ConnectTimeout = TimeSpan.FromSeconds(2),
    };

    [Fact]
    public async Task EveryConnectionStartsWithASyncBeforeItsFirstCommand()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        await client.PingAsync();
        await client.PingAsync();

        Assert.Equal(["guest-sync-delimited", "guest-ping", "guest-ping"], agent.Commands);
    }

    [Fact]
    public async Task FreezeReturnsTheCountOfFileSystemsAndThawUndoesIt()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { FileSystems = 3 };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        Assert.Equal(3, await client.FreezeAsync());
        Assert.Equal(GuestFreezeStatus.Frozen, await client.StatusAsync());
        Assert.Equal(3, await client.ThawAsync());
        Assert.Equal(GuestFreezeStatus.Thawed, await client.StatusAsync());
        Assert.Equal(1, agent.Thaws);
    }

    [Fact]
    public async Task FreezeListSendsTheMountPoints()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        Assert.Equal(2, await client.FreezeListAsync(["/", "/data"]));
        Assert.Contains("guest-fsfreeze-freeze-list", agent.Commands);
        await client.ThawAsync();
    }

    [Fact]
    public async Task InfoGivesTheVersionAndTheEnabledCommands()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        var info = await client.InfoAsync();

        Assert.Equal("fake-1.0", info.Version);
        Assert.Equal(["guest-ping"], info.EnabledCommands);
    }

    [Fact]
    public async Task NoAgentOnTheSocketIsAOneLineError()
    {
        using var dir = new TempFolder("ga");

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => GuestAgentClient.ConnectAsync(dir.File("none.sock"), Quick));

        Assert.Equal(GuestAgentErrorKind.NoAgent, e.Kind);
        Assert.Contains("cannot reach the guest agent", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task AHungAgentTimesOutAndTheNextCallSyncsAgain()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.Hang };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => client.PingAsync());
        Assert.Equal(GuestAgentErrorKind.Timeout, e.Kind);
        Assert.Contains("did not answer within", e.Message);

        agent.Mode = FakeAgentMode.Normal;
        await client.PingAsync();
        Assert.Equal(["guest-sync-delimited", "guest-sync-delimited", "guest-ping"], agent.Commands);
    }

    [Fact]
    public async Task AReplyThatComesAfterItsTimeoutIsNeverTakenForTheNextOne()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.HangOnFreeze, FileSystems = 4 };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        await Assert.ThrowsAsync<GuestAgentException>(() => client.FreezeAsync());
        agent.Mode = FakeAgentMode.Normal;

        // The agent is frozen: the thaw's count is the proof the reply is the thaw's own.
        Assert.Equal(4, await client.ThawAsync());
    }

    [Fact]
    public async Task StaleRepliesBeforeTheSyncReplyAreSkipped()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.StaleReplies, FileSystems = 5 };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        Assert.Equal(5, await client.FreezeAsync());
        Assert.Equal(5, await client.ThawAsync());
    }

    [Fact]
    public async Task GarbageIsAProtocolErrorAndTheNextCallResyncs()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.Garbage };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => client.PingAsync());
        Assert.Equal(GuestAgentErrorKind.Protocol, e.Kind);
        Assert.Contains("not JSON", e.Message);

        agent.Mode = FakeAgentMode.Normal;
        await client.PingAsync();
        Assert.Equal(2, agent.Commands.Count(c => c == "guest-sync-delimited"));
    }

    [Fact]
    public async Task AReplyWithAnotherIdIsRefused()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.WrongId };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => client.PingAsync());

        Assert.Equal(GuestAgentErrorKind.Protocol, e.Kind);
        Assert.Contains("someone-else", e.Message);
    }

    [Fact]
    public async Task AReplyOfAnotherCommandsShapeIsRefused()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.ReplyToOther };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        var ping = await Assert.ThrowsAsync<GuestAgentException>(() => client.PingAsync());
        var freeze = await Assert.ThrowsAsync<GuestAgentException>(() => client.FreezeAsync());

        Assert.Contains("not one to guest-ping", ping.Message);
        Assert.Contains("not one to guest-fsfreeze-freeze", freeze.Message);
    }

    [Fact]
    public async Task ALineLongerThanTheLimitIsRefusedInBoundedMemory()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.LongLine };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick with { CallTimeout = TimeSpan.FromSeconds(10) });

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => client.InfoAsync());

        Assert.Equal(GuestAgentErrorKind.Protocol, e.Kind);
        Assert.Contains("longer than 65536 bytes", e.Message);
    }

    [Fact]
    public async Task AConnectionDroppedDuringACallIsReportedAsDisconnected()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.DropOnFreeze };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => client.FreezeAsync());

        Assert.Equal(GuestAgentErrorKind.Disconnected, e.Kind);
        Assert.True(client.IsClosed);
    }

    [Fact]
    public async Task AnAgentsRefusalKeepsTheStreamInStep()
    {
        using var dir = new TempFolder("ga");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { Mode = FakeAgentMode.RefuseFreeze };
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath, Quick);

        var e = await Assert.ThrowsAsync<GuestAgentException>(() => client.FreezeAsync());
        await client.PingAsync();

        Assert.Equal(GuestAgentErrorKind.AgentError, e.Kind);
        Assert.Equal("CommandNotFound", e.AgentErrorClass);
        Assert.Single(agent.Commands, c => c == "guest-sync-delimited");
    }
}
