using System.Net.Sockets;
using System.Text;
using Strata.TestKit;

namespace Strata.Guest.Tests;

/// <summary>The watch process's work, driven in process over a real socket pair, as the daemon drives it.</summary>
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
        int status = await RunAsync(new FreezeWatcher(log), link => Send(link, $"arm 3600000 - {agent.SocketPath}"));

        Assert.Equal(0, status);
        Assert.False(agent.Frozen);
        Assert.Contains("2 file systems thawed", log.ToString());
    }

    [Fact]
    public async Task ADisarmedSocketIsLeftAlone()
    {
        using var dir = new TempFolder("fw");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));

        int status = await RunAsync(new FreezeWatcher(TextWriter.Null), link =>
        {
            Send(link, $"arm 3600000 - {agent.SocketPath}");
            Send(link, $"disarm {agent.SocketPath}");
        });

        Assert.Equal(0, status);
        Assert.Empty(agent.Commands);
    }

    [Fact]
    public async Task AWatcherThatCannotReachTheAgentGivesUpInBoundedTimeAndSaysSo()
    {
        using var dir = new TempFolder("fw");
        var log = new StringWriter();
        var watcher = new FreezeWatcher(log) { GiveUpAfter = TimeSpan.FromMilliseconds(300), RetryDelay = TimeSpan.FromMilliseconds(50) };

        int status = await RunAsync(watcher, link => Send(link, $"arm 3600000 - {dir.File("none.sock")}"));

        Assert.Equal(1, status);
        Assert.Contains("could not thaw", log.ToString());
    }

    [Fact]
    public async Task PastTheLeaseWithTheLinkStillOpenTheWatcherThawsOnTheDaemonsOwnConnection()
    {
        // The agent serves one client at a time, as QEMU's chardev does: while the "daemon" holds its
        // connection, a new one would never be answered; only the copy handed over reaches the agent.
        using var dir = new TempFolder("fw");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock")) { OneClientAtATime = true };
        await using var daemonClient = await GuestAgentClient.ConnectAsync(agent.SocketPath);
        await daemonClient.FreezeAsync();
        var (daemonEnd, watchEnd) = UnixRights.SocketPair();
        var log = new StringWriter();
        var watcher = new FreezeWatcher(log) { Agent = new GuestAgentOptions { CallTimeout = TimeSpan.FromSeconds(2) } };
        var running = watcher.RunAsync(watchEnd);

        UnixRights.Send(daemonEnd, Encoding.UTF8.GetBytes($"arm 3600000 fd {agent.SocketPath}\n"), daemonClient.Handle);
        UnixRights.Send(daemonEnd, Encoding.UTF8.GetBytes($"lease 200 {agent.SocketPath}\n"), null);
        await agent.WaitUntilAsync(a => !a.Frozen, "the watcher's thaw at the lease's end", TimeSpan.FromSeconds(20));

        // The daemon's connection still works once it resumes: the watcher used a copy and closed only that.
        await daemonClient.PingAsync();
        Assert.Equal(0, await daemonClient.ThawAsync());
        Assert.Equal(1, agent.ConnectionsAccepted);

        // The daemon ends (its connection and the link close): the socket is still armed, and the
        // watcher's last thaw, on a new connection, finds nothing frozen.
        await daemonClient.DisposeAsync();
        daemonEnd.Dispose();
        Assert.Equal(0, await running.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("thawed on the daemon's connection", log.ToString());
        watchEnd.Dispose();
    }

    [Fact]
    public async Task ADisarmBeforeTheDeadlineKeepsTheWatcherFromThawing()
    {
        using var dir = new TempFolder("fw");
        await using var agent = new FakeGuestAgent(dir.File("qga.sock"));
        var (daemonEnd, watchEnd) = UnixRights.SocketPair();
        var running = new FreezeWatcher(TextWriter.Null).RunAsync(watchEnd);

        UnixRights.Send(daemonEnd, Encoding.UTF8.GetBytes($"arm 3600000 - {agent.SocketPath}\nlease 300 {agent.SocketPath}\ndisarm {agent.SocketPath}\n"), null);
        await Task.Delay(600);
        daemonEnd.Dispose();

        Assert.Equal(0, await running.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Empty(agent.Commands);
        watchEnd.Dispose();
    }

    /// <summary>Runs the watcher on a fresh link, lets <paramref name="talk"/> write to it, then closes it (the daemon's end) and waits (bounded) for the exit status.</summary>
    private static async Task<int> RunAsync(FreezeWatcher watcher, Action<SafeSocketHandle> talk)
    {
        var (daemonEnd, watchEnd) = UnixRights.SocketPair();
        using (watchEnd)
        {
            var running = watcher.RunAsync(watchEnd);
            using (daemonEnd)
            {
                talk(daemonEnd);
            }

            return await running.WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    private static void Send(SafeSocketHandle link, string line) => UnixRights.Send(link, Encoding.UTF8.GetBytes(line + "\n"), null);
}
