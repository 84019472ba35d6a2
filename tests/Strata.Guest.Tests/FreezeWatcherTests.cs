using Strata.TestKit;

namespace Strata.Guest.Tests;

public sealed class FreezeWatcherTests
{
    [Fact]
    public async Task AtEndOfInputTheWatcherThawsEverySocketStillArmed()
    {
        using var dir = new TempFolder("fw");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        await using (var client = await GuestAgentClient.ConnectAsync(agent.SocketPath))
        {
            await client.FreezeAsync();
        }

        var log = new StringWriter();
        int status = await new FreezeWatcher(log).RunAsync(new StringReader($"arm {agent.SocketPath}\n"));

        Assert.Equal(0, status);
        Assert.False(agent.Frozen);
        Assert.Contains("2 file systems thawed", log.ToString());
    }

    [Fact]
    public async Task ADisarmedSocketIsLeftAlone()
    {
        using var dir = new TempFolder("fw");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));

        int status = await new FreezeWatcher(TextWriter.Null).RunAsync(new StringReader($"arm {agent.SocketPath}\ndisarm {agent.SocketPath}\n"));

        Assert.Equal(0, status);
        Assert.Empty(agent.Commands);
    }

    [Fact]
    public async Task AWatcherThatCannotReachTheAgentGivesUpInBoundedTimeAndSaysSo()
    {
        using var dir = new TempFolder("fw");
        var log = new StringWriter();
        var watcher = new FreezeWatcher(log) { GiveUpAfter = TimeSpan.FromMilliseconds(300), RetryDelay = TimeSpan.FromMilliseconds(50) };

        int status = await watcher.RunAsync(new StringReader($"arm {dir.File("none.sock")}\n"));

        Assert.Equal(1, status);
        Assert.Contains("could not thaw", log.ToString());
    }
}
