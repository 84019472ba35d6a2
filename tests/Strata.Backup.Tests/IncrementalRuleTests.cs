using Strata.Block.Bitmaps;

namespace Strata.Backup.Tests;

public sealed class IncrementalRuleTests
{
    private const long Size = 8 << 20;
    private const string File = "/srv/t1.dbmp";

    private static readonly BackupManifest Last = Manifests.Full(Size, tracking: Manifests.Bitmap(File, 3, "active"));

    private static BitmapReading Reading(ulong generation = 4, bool tracked = false, BitmapStoreState state = BitmapStoreState.Frozen,
        long diskSize = Size, long granularity = 4096) =>
        new(Manifests.Bitmap(File, generation, granularity: granularity), diskSize, tracked, state, new DirtyBitmap(diskSize, granularity));

    [Fact]
    public void ABitmapSeenTrackingAtTheLastPointAndSavedOnceSinceMakesAnIncremental()
    {
        Assert.Equal(BackupPlan.Incremental, IncrementalRule.Decide(Last, Size, File, Reading(), null));
    }

    [Fact]
    public void AConsistentSaveCountsAsTheOneSaveToo()
    {
        Assert.Equal(BackupKind.Incremental, IncrementalRule.Decide(Last, Size, File, Reading(state: BitmapStoreState.Consistent), null).Kind);
    }

    [Fact]
    public void NoBitmapGivenIsAFullPointWithoutComplaint()
    {
        Assert.Equal(BackupPlan.Full(null), IncrementalRule.Decide(Last, Size, null, null, null));
    }

    [Fact]
    public void ABitmapCarriedByAFailedLiveBackupFollowsTheLastPointAtItsRecordedGeneration()
    {
        var notSeen = Manifests.Full(Size);
        var carried = Manifests.Bitmap(File, 3, "active");

        Assert.Equal(BackupPlan.Incremental, IncrementalRule.Decide(notSeen, Size, File, Reading(), null, carried));
        Assert.Contains("generation 5, 4 expected", IncrementalRule.Decide(notSeen, Size, File, Reading(generation: 5), null, carried).Fallback);
        Assert.Contains("was not tracking", IncrementalRule.Decide(notSeen, Size, File, Reading(), null, carried with { File = "/srv/other.dbmp" }).Fallback);
    }

    private const string Lineage = "0123456789abcdef0123456789abcdef";

    private static readonly BackupManifest LastWithLineage = Manifests.Full(Size, tracking: Manifests.Bitmap(File, 3, "active") with { Lineage = Lineage });

    private static BitmapReading InLineage(string lineage, ulong generation, string began = "the file was created", string? imageChanged = null)
    {
        var reading = Reading(generation);
        return reading with { Record = reading.Record with { Lineage = lineage }, Lineage = new BitmapLineage(lineage, began, imageChanged) };
    }

    [Theory]
    [InlineData(4UL)]
    [InlineData(9UL)]
    public void TheSameLineageWithAnyLaterGenerationMakesAnIncremental(ulong generation)
    {
        Assert.Equal(BackupPlan.Incremental, IncrementalRule.Decide(LastWithLineage, Size, File, InLineage(Lineage, generation), null));
    }

    [Fact]
    public void ANewLineageGivesAFullPointSayingWhyItBegan()
    {
        var plan = IncrementalRule.Decide(LastWithLineage, Size, File, InLineage(Lineage.Replace('0', 'f'), 4, "the image changed while nothing tracked it"), null);

        Assert.Equal(BackupKind.Full, plan.Kind);
        Assert.Equal("bitmap 't1.dbmp' began a new tracking lineage after point 0 (the image changed while nothing tracked it): it may miss writes since", plan.Fallback);
    }

    [Fact]
    public void AGenerationNotAfterTheOneSeenGivesAFullPoint()
    {
        Assert.Contains("not after the 3 seen at point 0", IncrementalRule.Decide(LastWithLineage, Size, File, InLineage(Lineage, 3), null).Fallback);
    }

    [Fact]
    public void AnImageWrittenAfterTheCloseThatStoppedTrackingGivesAFullPoint()
    {
        var plan = IncrementalRule.Decide(LastWithLineage, Size, File, InLineage(Lineage, 4, imageChanged: "'/srv/disk.img' was written"), null);

        Assert.Equal(BackupKind.Full, plan.Kind);
        Assert.Contains("since then '/srv/disk.img' was written", plan.Fallback);
    }

    [Fact]
    public void APointRecordedBeforeLineagesKeepsTheRuleOfOneSave()
    {
        Assert.Equal(BackupPlan.Incremental, IncrementalRule.Decide(Last, Size, File, InLineage(Lineage, 4), null));
        Assert.Contains("generation 5, 4 expected", IncrementalRule.Decide(Last, Size, File, InLineage(Lineage, 5), null).Fallback);
    }

    public static TheoryData<string, BackupManifest?, BitmapReading?, string> FallbackCases() => new()
    {
        { "an empty set", null, Reading(), "the set has no point yet" },
        { "a missing file", Last, null, "cannot be read (no such file)" },
        { "a bitmap tracked now", Last, Reading(tracked: true, state: BitmapStoreState.Active), "is being tracked now" },
        { "a bitmap left in use", Last, Reading(state: BitmapStoreState.Active), "left in use by a tracker that stopped" },
        { "an inconsistent bitmap", Last, Reading(state: BitmapStoreState.Inconsistent), "is inconsistent" },
        { "a bitmap of another disk", Last, Reading(diskSize: Size * 2), $"covers a disk of {Size * 2} bytes" },
        { "a disk that grew", Last with { Size = Size / 2, Chunks = [Manifests.ZeroHash(4 << 20)] }, Reading(), "point 0 was" },
        { "a bitmap not seen at the last point", Manifests.Full(Size), Reading(), "was not tracking the disk when point 0 was taken" },
        { "a bitmap saved twice since", Last, Reading(generation: 5), "generation 5, 4 expected" },
        { "a bitmap never saved since", Last, Reading(generation: 3), "generation 3, 4 expected" },
        { "another file of the same name", Last, Reading(granularity: 65536), "is not the file seen at point 0" },
    };

    [Theory]
    [MemberData(nameof(FallbackCases))]
    public void AnythingShortOfProofGivesAFullPointWithTheReason(string situation, BackupManifest? last, BitmapReading? reading, string reason)
    {
        var plan = IncrementalRule.Decide(last, Size, File, reading, reading is null ? "no such file" : null);

        Assert.True(plan.Kind == BackupKind.Full, situation);
        Assert.Contains(reason, plan.Fallback);
    }
}
