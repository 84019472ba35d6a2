using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Strata.Agent;

namespace Strata.Vm.Tests;

/// <summary>strata-agent's protocol and lease on the host, with a freezer that records instead of freezing.</summary>
public sealed class GuestAgentTests : IDisposable
{
    private readonly RecordingFreezer _freezer = new();
    private readonly StringWriter _log = new();
    private long _now = 1_000;

    private GuestAgent Agent(TimeSpan? lease = null) =>
        new(_freezer, new HookRunner(null, TimeSpan.FromSeconds(1), _log), lease ?? TimeSpan.FromSeconds(5), _log, () => _now);

    private static JsonObject Call(GuestAgent agent, string message)
    {
        byte[] reply = agent.Handle(Encoding.UTF8.GetBytes(message))!;
        return JsonNode.Parse(reply.AsSpan().TrimStart((byte)0xFF))!.AsObject();
    }

    private void Advance(double seconds) => _now += (long)(seconds * Stopwatch.Frequency);

    public void Dispose() => _log.Dispose();

    [Fact]
    public void SyncDelimitedRepliesWithA0xFFFirstAndEchoesTheId()
    {
        byte[] reply = Agent().Handle("""{"execute":"guest-sync-delimited","arguments":{"id":123456789012}}"""u8)!;

        Assert.Equal(0xFF, reply[0]);
        Assert.Equal("""{"return":123456789012}""" + "\n", Encoding.UTF8.GetString(reply.AsSpan(1)));
    }

    [Fact]
    public void TheCommandsIdIsEchoedInTheReply()
    {
        var reply = Call(Agent(), """{"execute":"guest-ping","id":"abc"}""");

        Assert.Equal("abc", reply["id"]!.GetValue<string>());
        Assert.NotNull(reply["return"]);
    }

    [Fact]
    public void AnUnknownCommandIsCommandNotFound()
    {
        var reply = Call(Agent(), """{"execute":"guest-exec","arguments":{"path":"/bin/sh"}}""");

        Assert.Equal("CommandNotFound", reply["error"]!["class"]!.GetValue<string>());
    }

    [Fact]
    public void AMessageThatIsNotACommandGetsAGenericErrorAndTheAgentGoesOn()
    {
        var agent = Agent();

        Assert.Equal("GenericError", Call(agent, """{"exec":"guest-ping"}""")["error"]!["class"]!.GetValue<string>());
        Assert.Equal("GenericError", Call(agent, """{"execute":"guest-ping","arguments":[1]}""")["error"]!["class"]!.GetValue<string>());
        Assert.NotNull(Call(agent, """{"execute":"guest-ping"}""")["return"]);
    }

    [Fact]
    public void FreezeFreezesEveryMountLastFirstAndThawThawsThemFirstFirst()
    {
        var agent = Agent();

        Assert.Equal(2, Call(agent, """{"execute":"guest-fsfreeze-freeze"}""")["return"]!.GetValue<int>());
        Assert.Equal("frozen", Call(agent, """{"execute":"guest-fsfreeze-status"}""")["return"]!.GetValue<string>());
        Assert.Equal(2, Call(agent, """{"execute":"guest-fsfreeze-thaw"}""")["return"]!.GetValue<int>());

        Assert.Equal(["freeze /data", "freeze /", "thaw /", "thaw /data"], _freezer.Calls);
        Assert.Equal("thawed", Call(agent, """{"execute":"guest-fsfreeze-status"}""")["return"]!.GetValue<string>());
    }

    [Fact]
    public void ASecondFreezeIsRefusedNotNested()
    {
        var agent = Agent();
        Call(agent, """{"execute":"guest-fsfreeze-freeze"}""");

        var second = Call(agent, """{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/"]}}""");

        Assert.Contains("already frozen", second["error"]!["desc"]!.GetValue<string>());
        Assert.Equal(2, _freezer.Calls.Count);
    }

    [Fact]
    public void AFreezeThatFailsHalfWayThawsWhatItFroze()
    {
        _freezer.Refuse = "/";
        var agent = Agent();

        var reply = Call(agent, """{"execute":"guest-fsfreeze-freeze"}""");

        Assert.Equal("cannot freeze /: refused", reply["error"]!["desc"]!.GetValue<string>());
        Assert.Equal(["freeze /data", "thaw /data"], _freezer.Calls);
        Assert.False(agent.IsFrozen);
    }

    [Fact]
    public void FrozenFileSystemsThawByThemselvesOnceTheHostIsSilentForTheLease()
    {
        var agent = Agent(TimeSpan.FromSeconds(3));
        Call(agent, """{"execute":"guest-fsfreeze-freeze"}""");

        Advance(2.9);
        Assert.Equal(0, agent.ExpireLease());
        Advance(0.2);
        Assert.Equal(2, agent.ExpireLease());

        Assert.False(agent.IsFrozen);
        Assert.Contains("thawed 2 file systems by itself", _log.ToString());
    }

    [Fact]
    public void AnyCommandRenewsTheLease()
    {
        var agent = Agent(TimeSpan.FromSeconds(3));
        Call(agent, """{"execute":"guest-fsfreeze-freeze"}""");

        Advance(2.5);
        Call(agent, """{"execute":"guest-ping"}""");
        Advance(2.5);

        Assert.Equal(0, agent.ExpireLease());
        Assert.True(agent.IsFrozen);
    }

    [Fact]
    public void FreezeListNeedsAnArrayOfMountPoints()
    {
        var reply = Call(Agent(), """{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":"/"}}""");

        Assert.Contains("'mountpoints' must be an array of strings", reply["error"]!["desc"]!.GetValue<string>());
        Assert.Empty(_freezer.Calls);
    }

    [Fact]
    public void MountPointsWithEscapedSpacesAreReadAsTheKernelMeantThem()
    {
        Assert.Equal("/mnt/a b\\c", FsFreezer.Unescape("/mnt/a\\040b\\134c"));
        Assert.Equal("/mnt/\\x", FsFreezer.Unescape("/mnt/\\x"));
    }

    [Theory]
    [InlineData(new string[0], "--port is required")]
    [InlineData(new[] { "--port", "/dev/x", "--lease", "0" }, "--lease '0': a number of seconds above 0")]
    [InlineData(new[] { "--port" }, "--port needs a value")]
    [InlineData(new[] { "--bogus", "1" }, "unknown option '--bogus'")]
    public void BadOptionsGiveOneLine(string[] args, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => AgentOptions.Parse(args));

        Assert.StartsWith(expected, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }
}
