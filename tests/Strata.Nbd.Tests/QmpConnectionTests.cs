using System.Text;
using System.Text.Json;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Nbd.Tests;

/// <summary>
/// What one control connection does with input no well-behaved client sends, against a real
/// `strata serve` over its unix socket, with the bytes written by the test: every bad message gets one
/// error reply (QEMU's class, a clear text) and the same connection answers the next good one.
/// </summary>
public sealed class QmpConnectionTests : IClassFixture<ServedControlSocket>
{
    private static readonly byte[] Good = """{"execute": "query-status", "id": "good"}"""u8.ToArray();

    private readonly ServedControlSocket _served;
    private readonly ITestOutputHelper _output;

    public QmpConnectionTests(ServedControlSocket served, ITestOutputHelper output)
    {
        _served = served;
        _output = output;
    }

    [Fact]
    public async Task DuplicateKeysAreAnErrorSoTheLastOneNeverWins()
    {
        // Last-one-wins would run 'quit' here and stop the daemon.
        await ErrorThenGoodAsync("""{"execute":"query-status","execute":"quit"}""", "duplicate key");
        await ErrorThenGoodAsync("""{"execute":"job-dismiss","arguments":{"id":"a","id":"b"}}""", "duplicate key");
    }

    [Fact]
    public async Task InvalidUtf8InAStringIsAnError()
    {
        await ErrorThenGoodAsync([.. """{"execute":"query-"""u8, 0xC3, .. "\"}"u8], "invalid UTF-8");
        await ErrorThenGoodAsync([.. "{\"execute\":\"query-status\",\"arguments\":{\"a\":\""u8, 0xED, 0xA0, 0x80, .. "\"}}"u8], "invalid UTF-8");
    }

    [Fact]
    public async Task ALoneSurrogateEscapeIsAnError()
    {
        await ErrorThenGoodAsync("""{"execute":"\ud800"}""", "\\ud800");
        await ErrorThenGoodAsync("""{"execute":"query-status","id":"\udc00x"}""", "\\udc00");
    }

    [Fact]
    public async Task ARawNewlineInAStringThatNeverEndsIsAnErrorAndTheNextLineIsRead()
    {
        // The string is never closed: the old splitter took every later quote as part of it and hung.
        await ErrorThenGoodAsync("{\"execute\": \"query-status\n", "control character");
    }

    [Fact]
    public async Task ControlCharactersInsideAStringAreOneErrorEach()
    {
        await ErrorThenGoodAsync("{\"execute\":\"que\nry-status\"}", "control character");
        await ErrorThenGoodAsync("{\"execute\":\"query-\u0001status\"}", "control character");
    }

    [Fact]
    public async Task NestingDeeperThanTheBoundIsAnError()
    {
        await ErrorThenGoodAsync(new string('[', 1025) + new string(']', 1025), "nesting");
        await ErrorThenGoodAsync(string.Concat(Enumerable.Repeat("""{"a":""", 1100)) + "1" + new string('}', 1100), "nesting");
    }

    [Fact]
    public async Task AnIdNestedToTheBoundIsEchoedWhole()
    {
        using var client = await _served.ConnectAsync();
        const int Depth = 1023;
        await client.SendRawAsync(Encoding.ASCII.GetBytes($$"""{"execute":"query-status","id":{{new string('[', Depth)}}{{new string(']', Depth)}}}""" + "\n"));
        var id = (await client.ReadReplyAsync()).GetProperty("id");
        int depth = 0;
        for (; id.ValueKind == JsonValueKind.Array && id.GetArrayLength() > 0; id = id[0])
        {
            depth++;
        }

        Assert.Equal(Depth - 1, depth);
        var next = await client.ExchangeAsync(Encoding.UTF8.GetString(Good));
        Assert.True(next.TryGetProperty("return", out _), $"{next}");
    }

    [Fact]
    public async Task AMessageLargerThanTheSizeBoundIsAnErrorAndTheConnectionGoesOn()
    {
        string big = "{\"execute\":\"query-status\",\"arguments\":{\"x\":\"" + new string('a', (1 << 20) + 100) + "\"}}";
        await ErrorThenGoodAsync(big, "1048576 bytes");
    }

    [Fact]
    public async Task UnknownArgumentsAreAnError()
    {
        await ErrorThenGoodAsync("""{"execute":"query-status","arguments":{"bogus":1}}""", "Parameter 'bogus' is unexpected");
        await ErrorThenGoodAsync("""{"execute":"job-dismiss","arguments":{"id":"x","force":true}}""", "Parameter 'force' is unexpected");
    }

    [Fact]
    public async Task UnknownMembersBesideExecuteAreAnError()
    {
        await ErrorThenGoodAsync("""{"execute":"query-status","argument":{}}""", "QMP input member 'argument' is unexpected");
    }

    [Fact]
    public async Task WrongArgumentTypesAreFoundBeforeTheCommandRuns()
    {
        // QEMU checks every argument's type before it looks for the device.
        await ErrorThenGoodAsync("""{"execute":"block-commit","arguments":{"device":"nope","speed":"fast"}}""",
            "Invalid parameter type for 'speed', expected: integer");
        await ErrorThenGoodAsync("""{"execute":"job-dismiss","arguments":{"id":null}}""",
            "Invalid parameter type for 'id', expected: string");
    }

    [Fact]
    public async Task TheDataOfEachTransactionActionIsCheckedAndNothingIsCreated()
    {
        string overlay = Path.Combine(_served.Folder, "never.qcow2");
        string action = $$$"""{"type":"blockdev-snapshot-sync","data":{"device":"ide0-hd0","snapshot-file":"{{{overlay}}}","bogus":1}}""";
        await ErrorThenGoodAsync($$$"""{"execute":"transaction","arguments":{"actions":[{{{action}}}]}}""",
            "Parameter 'actions[0].data.bogus' is unexpected");
        Assert.False(File.Exists(overlay), "a snapshot ran although its action had an unknown argument");

        await ErrorThenGoodAsync("""{"execute":"transaction","arguments":{"actions":[{"type":"blockdev-snapshot-sync","data":{"device":5}}]}}""",
            "Invalid parameter type for 'actions[0].data.device', expected: string");
        await ErrorThenGoodAsync("""{"execute":"transaction","arguments":{"actions":[{"type":"blockdev-snapshot-sync","data":{},"x":1}]}}""",
            "Parameter 'actions[0].x' is unexpected");
    }

    /// <summary>
    /// Seeded: random byte strings and random mutations of valid commands on one connection. A
    /// mutation that keeps the message whole gets exactly one reply; after anything, a reset byte
    /// (qmp-spec.rst, "Forcing the JSON parser into known-good state") and a good command get that
    /// command answered; every reply is a well-formed return or error; the daemon stays up.
    /// </summary>
    [Fact]
    public async Task RandomBytesAndMutatedCommandsEachGetTheirRepliesAndTheDaemonStaysUp()
    {
        int seed = Workload.NewSeed();
        _output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        using var client = await _served.ConnectAsync();
        for (int round = 0; round < 200; round++)
        {
            string id = $"sentinel-{round}";
            byte[] sentinel = Encoding.UTF8.GetBytes($$"""{"execute":"query-status","id":"{{id}}"}""" + "\n");
            if (round % 2 == 0)
            {
                byte[] whole = QmpMutations.Whole(random);
                string context = $"seed {seed}, round {round}, sent {QmpMutations.Show(whole)}";
                await client.SendRawAsync([.. whole, (byte)'\n', .. sentinel]);
                AssertWellFormed(await ReadAsync(client, context), context);
                var reply = await ReadAsync(client, context);
                Assert.True(reply.TryGetProperty("id", out var got) && got.ValueKind == JsonValueKind.String && got.GetString() == id,
                    $"{context}: a whole message got more or fewer than one reply; then {reply}");
            }
            else
            {
                byte[] junk = QmpMutations.Junk(random);
                string context = $"seed {seed}, round {round}, sent {QmpMutations.Show(junk)}";
                await client.SendRawAsync([.. junk, 0xFF, (byte)'\n', .. sentinel]);
                for (int replies = 0; ; replies++)
                {
                    Assert.True(replies < junk.Length + 4, $"{context}: more replies than bytes sent");
                    var reply = await ReadAsync(client, context);
                    AssertWellFormed(reply, context);
                    if (reply.TryGetProperty("id", out var got) && got.ValueKind == JsonValueKind.String && got.GetString() == id)
                    {
                        Assert.True(reply.TryGetProperty("return", out _), $"{context}: {reply}");
                        break;
                    }
                }
            }
        }

        using var fresh = await _served.ConnectAsync();
        var status = await fresh.ExchangeAsync("""{"execute":"query-status"}""");
        Assert.True(status.TryGetProperty("return", out _), $"seed {seed}: {status}");
    }

    /// <summary>The next reply; when none comes, the failure says what was sent (and the seed).</summary>
    private static async Task<JsonElement> ReadAsync(QmpWire client, string context)
    {
        try
        {
            return await client.ReadReplyAsync();
        }
        catch (Exception e) when (e is TimeoutException or EndOfStreamException or IOException)
        {
            throw new InvalidOperationException($"{context}: {e.Message}", e);
        }
    }

    private static void AssertWellFormed(JsonElement reply, string context)
    {
        if (reply.TryGetProperty("error", out var error))
        {
            Assert.Equal(JsonValueKind.String, error.GetProperty("class").ValueKind);
            string desc = error.GetProperty("desc").GetString()!;
            Assert.DoesNotContain("   at ", desc, StringComparison.Ordinal);
            Assert.True(desc.Length > 0, context);
        }
        else
        {
            Assert.True(reply.TryGetProperty("return", out _), $"{context}: neither return nor error: {reply}");
        }
    }

    private Task ErrorThenGoodAsync(string bad, string expected) => ErrorThenGoodAsync(Encoding.UTF8.GetBytes(bad), expected);

    /// <summary>
    /// Sends <paramref name="bad"/> and a good command in one write: the first reply must be one
    /// GenericError whose text holds <paramref name="expected"/>, the next the good command's answer.
    /// </summary>
    private async Task ErrorThenGoodAsync(byte[] bad, string expected)
    {
        using var client = await _served.ConnectAsync();
        await client.SendRawAsync([.. bad, (byte)'\n', .. Good, (byte)'\n']);
        var (errorClass, desc) = ServedControlSocket.Error(await client.ReadReplyAsync());
        Assert.Equal("GenericError", errorClass);
        Assert.Contains(expected, desc, StringComparison.Ordinal);
        var next = await client.ReadReplyAsync();
        Assert.True(next.TryGetProperty("return", out _) && next.GetProperty("id").GetString() == "good",
            $"the connection did not answer the next command alone after '{desc}': {next}");
    }
}
