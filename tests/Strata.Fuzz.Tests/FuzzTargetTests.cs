using Xunit.Abstractions;

namespace Strata.Fuzz.Tests;

/// <summary>Each fuzz target (<see cref="FuzzTargets"/>): its kept inputs replayed, and a short afl-fuzz run.</summary>
[Collection(AflCollection.Name)]
public sealed class FuzzTargetTests(AflBuild afl, ITestOutputHelper output)
{
    [Theory]
    [InlineData("qcow2")]
    [InlineData("nbd")]
    [InlineData("qmp")]
    public Task EverySeedAndFixedCrashOfTheTargetReplaysWithoutFailure(string target)
        => TargetReplay.AssertEveryInputPassesAsync(FuzzTargets.Find(target)!);

    [Theory]
    [InlineData("qcow2")]
    [InlineData("nbd")]
    [InlineData("qmp")]
    public Task FifteenSecondsOfAflOnTheTargetFindNoCrashThatIsNotAlreadyPending(string target)
        => afl.AssertNoNewCrashAsync(target, 15, output);
}
