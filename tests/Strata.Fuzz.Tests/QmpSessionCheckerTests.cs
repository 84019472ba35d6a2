using System.Text;

namespace Strata.Fuzz.Tests;

public sealed class QmpSessionCheckerTests
{
    private const string Greeting = """{"QMP":{"version":{},"capabilities":[]}}""";

    private static readonly byte[] TwoMessages = Encoding.UTF8.GetBytes("""{"execute":"qmp_capabilities"} {"execute":"query-status"}""");

    private static byte[] Lines(params string[] lines) => Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => l + "\r\n")));

    [Fact]
    public void EveryMessageAnsweredOncePasses()
        => QmpSessionChecker.Check(TwoMessages, Lines(Greeting, """{"return":{}}""", """{"event":"STOP"}""", """{"error":{"class":"GenericError","desc":"no"}}"""), quitRequested: false);

    [Fact]
    public void AMessageWithoutAReplyFails()
    {
        var failure = Assert.Throws<FuzzFailure>(() => QmpSessionChecker.Check(TwoMessages, Lines(Greeting, """{"return":{}}"""), quitRequested: false));
        Assert.Contains("2 messages got 1 replies", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AReplyTooManyFails()
        => Assert.Throws<FuzzFailure>(() => QmpSessionChecker.Check(TwoMessages, Lines(Greeting, """{"return":{}}""", """{"return":{}}""", """{"return":{}}"""), quitRequested: false));

    [Fact]
    public void AnErrorWithoutItsClassFails()
        => Assert.Throws<FuzzFailure>(() => QmpSessionChecker.Check(TwoMessages, Lines(Greeting, """{"return":{}}""", """{"error":{"desc":"no"}}"""), quitRequested: false));

    [Fact]
    public void AMissingGreetingFails()
        => Assert.Throws<FuzzFailure>(() => QmpSessionChecker.Check(TwoMessages, Lines("""{"return":{}}""", """{"return":{}}"""), quitRequested: false));

    [Fact]
    public void QuitLeavesTheMessagesAfterItUnanswered()
        => QmpSessionChecker.Check(TwoMessages, Lines(Greeting, """{"return":{}}"""), quitRequested: true);
}
