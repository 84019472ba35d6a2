using System.Text;
using Strata.Agent;

namespace Strata.Vm.Tests;

public sealed class MessageFramerTests
{
    private static List<string?> Frame(params byte[][] chunks)
    {
        var framer = new MessageFramer();
        var messages = new List<string?>();
        foreach (byte[] chunk in chunks)
        {
            framer.Feed(chunk, m => messages.Add(m is null ? null : Encoding.UTF8.GetString(m)));
        }

        return messages;
    }

    [Fact]
    public void MessagesSplitAcrossReadsAreJoined() =>
        Assert.Equal(["""{"execute":"guest-ping"}"""], Frame("""{"exec"""u8.ToArray(), """ute":"guest-ping"}"""u8.ToArray()));

    [Fact]
    public void TwoMessagesInOneReadAreTwo() =>
        Assert.Equal(["""{"a":1}""", """{"b":[{}]}"""], Frame("""{"a":1}  {"b":[{}]}"""u8.ToArray()));

    [Fact]
    public void A0xFFDropsTheHalfReceivedMessage() =>
        Assert.Equal(["""{"execute":"guest-ping"}"""], Frame([.. """{"execute":"guest-fsfreeze-fr"""u8, 0xFF, .. """{"execute":"guest-ping"}"""u8]));

    [Fact]
    public void BracesAndEscapedQuotesInsideStringsDoNotEndTheMessage() =>
        Assert.Equal(["""{"a":"}\"{"}"""], Frame("""{"a":"}\"{"}"""u8.ToArray()));

    [Fact]
    public void JunkBetweenMessagesIsSkipped() =>
        Assert.Equal(["""{"a":1}"""], Frame("""\n garbage {"a":1}"""u8.ToArray()));

    [Fact]
    public void AnOversizedMessageIsReportedOnceAndTheNextOneIsRead()
    {
        string huge = "{\"a\":\"" + new string('x', MessageFramer.MaxMessage) + "\"}";

        Assert.Equal([null, """{"b":2}"""], Frame(Encoding.UTF8.GetBytes(huge + """{"b":2}""")));
    }
}
