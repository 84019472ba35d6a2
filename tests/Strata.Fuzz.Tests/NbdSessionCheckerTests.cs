using Strata.Nbd.Protocol;

namespace Strata.Fuzz.Tests;

public sealed class NbdSessionCheckerTests
{
    private static NbdBytes Client(bool structured = true)
    {
        var client = new NbdBytes().ClientFlags();
        if (structured)
        {
            client.Option(NbdOption.StructuredReply);
        }

        return client.Go("fuzz");
    }

    private static NbdBytes Server(bool structured = true)
    {
        var server = new NbdBytes().Greeting();
        if (structured)
        {
            server.OptionReply(NbdOption.StructuredReply, NbdOptionReply.Ack);
        }

        return server.OptionReply(NbdOption.Go, NbdOptionReply.Info, new byte[12]).OptionReply(NbdOption.Go, NbdOptionReply.Ack);
    }

    [Fact]
    public void AnHonestSessionPasses()
    {
        var client = Client().Request(NbdCommand.Read, 1, 0, 512).Request(NbdCommand.Write, 2, 0, 4, [1, 2, 3, 4]).Request(NbdCommand.Flush, 3, 0, 0);
        var server = Server().Simple(2).OffsetData(1, 0, 256, done: false).OffsetData(1, 256, 256).Simple(3);
        NbdSessionChecker.Check(client.ToArray(), server.ToArray());
    }

    [Fact]
    public void ARequestWithoutAReplyFails()
    {
        var client = Client().Request(NbdCommand.Flush, 7, 0, 0).Request(NbdCommand.Flush, 8, 0, 0);
        var failure = Assert.Throws<FuzzFailure>(() => NbdSessionChecker.Check(client.ToArray(), Server().Simple(7).ToArray()));
        Assert.Contains("cookie 8", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ARequestAnsweredTwiceFails()
    {
        var client = Client().Request(NbdCommand.Flush, 7, 0, 0);
        Assert.Throws<FuzzFailure>(() => NbdSessionChecker.Check(client.ToArray(), Server().Simple(7).Simple(7).ToArray()));
    }

    [Fact]
    public void AStructuredChunkWithoutStructuredRepliesFails()
    {
        var client = Client(structured: false).Request(NbdCommand.Read, 1, 0, 0);
        var server = Server(structured: false).Chunk(1, NbdReplyType.None, []);
        var failure = Assert.Throws<FuzzFailure>(() => NbdSessionChecker.Check(client.ToArray(), server.ToArray()));
        Assert.Contains("not negotiated", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AReadWhoseChunksLeaveAGapFails()
    {
        var client = Client().Request(NbdCommand.Read, 1, 0, 512);
        var failure = Assert.Throws<FuzzFailure>(() => NbdSessionChecker.Check(client.ToArray(), Server().OffsetData(1, 0, 256).ToArray()));
        Assert.Contains("256 bytes described", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DataOutsideTheReadFails()
    {
        var client = Client().Request(NbdCommand.Read, 1, 4096, 512);
        Assert.Throws<FuzzFailure>(() => NbdSessionChecker.Check(client.ToArray(), Server().OffsetData(1, 0, 512).ToArray()));
    }

    [Fact]
    public void AnOptionReplyNamingAnotherOptionFails()
    {
        var client = new NbdBytes().ClientFlags().Option(NbdOption.List);
        var server = new NbdBytes().Greeting().OptionReply(NbdOption.Info, NbdOptionReply.Ack);
        Assert.Throws<FuzzFailure>(() => NbdSessionChecker.Check(client.ToArray(), server.ToArray()));
    }

    [Fact]
    public void ADisconnectAfterBadRequestMagicPassesWithTheEarlierRequestsAnswered()
    {
        var client = Client().Request(NbdCommand.Flush, 1, 0, 0).Raw(new byte[NbdWire.RequestHeaderSize]);
        NbdSessionChecker.Check(client.ToArray(), Server().Simple(1).ToArray());
    }
}
