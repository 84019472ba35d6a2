using System.Net.Sockets;
using System.Text;
using Strata.Daemon.Control;
using Strata.TestKit;

namespace Strata.Daemon.Tests;

/// <summary>
/// The control client against a server that breaks the protocol: a reply it cannot read must fail the
/// command with the reason, never leave it waiting for a reply that cannot be matched any more.
/// </summary>
public sealed class QmpClientTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    public static TheoryData<string, string> BrokenReplies => new()
    {
        { "this is not json", "not valid JSON" },
        { "[1, 2, 3]", "not a JSON object" },
        { new string('[', 100) + new string(']', 100), "not valid JSON" },
        { "{\"a\":" + new string('[', 80) + new string(']', 80) + "}", "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(BrokenReplies))]
    public async Task AReplyThatIsNoJsonObjectFailsTheCommandWithTheReason(string reply, string reason)
    {
        using var folder = new TempFolder("qmp-client");
        string path = folder.File("qmp.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var server = ServeAsync(listener, reply);

        await using var client = await QmpClient.ConnectAsync(path).WaitAsync(Bound);
        var e = await Assert.ThrowsAsync<IOException>(() => client.ExecuteAsync("query-status").WaitAsync(Bound));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        await server.WaitAsync(Bound);
    }

    [Fact]
    public async Task AServerThatClosesBeforeItsGreetingIsOneClearError()
    {
        using var folder = new TempFolder("qmp-client");
        string path = folder.File("qmp.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var server = Task.Run(async () =>
        {
            using var peer = await listener.AcceptAsync();
        });

        var e = await Assert.ThrowsAsync<IOException>(() => QmpClient.ConnectAsync(path).WaitAsync(Bound));
        Assert.Contains("before its greeting", e.Message, StringComparison.Ordinal);
        await server.WaitAsync(Bound);
    }

    /// <summary>Greets, answers qmp_capabilities, then answers the next command with <paramref name="reply"/>.</summary>
    private static async Task ServeAsync(Socket listener, string reply)
    {
        using var peer = await listener.AcceptAsync();
        await using var stream = new NetworkStream(peer);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        await writer.WriteLineAsync("{\"QMP\": {\"version\": {}, \"capabilities\": []}}");
        Assert.Contains("qmp_capabilities", await reader.ReadLineAsync() ?? "", StringComparison.Ordinal);
        await writer.WriteLineAsync("{\"return\": {}}");
        Assert.Contains("query-status", await reader.ReadLineAsync() ?? "", StringComparison.Ordinal);
        await writer.WriteLineAsync(reply);

        // The client closes once it has seen the broken line.
        Assert.Null(await reader.ReadLineAsync());
    }
}
