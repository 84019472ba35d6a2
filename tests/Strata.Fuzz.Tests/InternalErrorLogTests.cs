namespace Strata.Fuzz.Tests;

public sealed class InternalErrorLogTests
{
    [Fact]
    public void OrdinaryLinesAreNoFailure()
    {
        var log = new InternalErrorLog();
        log.Write("nbd: option Go (10 bytes)");
        log.Write("qmp: connection closed: the peer closed the connection");
        log.ThrowIfAny();
    }

    [Fact]
    public void ACaughtUnexpectedExceptionIsAFailureNamingItsType()
    {
        var log = new InternalErrorLog();
        log.Write("nbd: Read at 4096 failed unexpectedly: System.NullReferenceException: Object reference not set\n   at Somewhere()");
        var failure = Assert.Throws<FuzzFailure>(log.ThrowIfAny);
        Assert.StartsWith("internal error System.NullReferenceException caught in: nbd: Read at 4096", failure.Message, StringComparison.Ordinal);
    }
}
