namespace Strata.Guest.Tests;

/// <summary>The client against the real qemu-ga (see <see cref="QemuGa"/>: only sync, ping and info are allowed, never a freeze).</summary>
public sealed class QemuGaInteropTests
{
    [Fact]
    public async Task SyncPingAndInfoWorkWithTheRealAgent()
    {
        await using var agent = await QemuGa.StartAsync();
        await using var client = await GuestAgentClient.ConnectAsync(agent.SocketPath);

        await client.SyncAsync();
        await client.PingAsync();
        var info = await client.InfoAsync();
        await client.SyncAsync();
        await client.PingAsync();

        Assert.Matches(@"^\d+\.\d+", info.Version);
        Assert.Equal(QemuGa.Allowed.Order(), info.EnabledCommands.Order());
    }

    [Fact]
    public async Task ASecondClientAfterTheFirstLeftIsInStepWithTheRealAgent()
    {
        await using var agent = await QemuGa.StartAsync();
        await using (var first = await GuestAgentClient.ConnectAsync(agent.SocketPath))
        {
            await first.PingAsync();
        }

        await using var second = await GuestAgentClient.ConnectAsync(agent.SocketPath);
        await second.PingAsync();
        Assert.NotEmpty((await second.InfoAsync()).Version);
    }

    [Fact]
    public async Task ABlockedFreezeIsAClearErrorAndLeavesTheChannelThawed()
    {
        await using var agent = await QemuGa.StartAsync();
        await using var channel = new GuestChannel("host", agent.SocketPath, ["d0"]);

        // The guard: a freeze is only ever sent to an agent that says it has the freeze disabled.
        var info = await channel.InfoAsync();
        Assert.DoesNotContain("guest-fsfreeze-freeze", info.EnabledCommands);
        var e = await Assert.ThrowsAsync<GuestAgentException>(() => channel.BeginSnapshotAsync(new object()));

        Assert.Equal(GuestAgentErrorKind.AgentError, e.Kind);
        Assert.Equal("CommandNotFound", e.AgentErrorClass);
        Assert.Contains("has been disabled", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(GuestFreezeState.Thawed, channel.State);
    }
}
