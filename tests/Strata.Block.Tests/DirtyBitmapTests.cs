using Strata.Block.Bitmaps;

namespace Strata.Block.Tests;

public sealed class DirtyBitmapTests
{
    [Fact]
    public void SettingPartOfAGranuleMarksTheWholeGranuleAndNoOther()
    {
        var bits = new DirtyBitmap(1 << 20, 4096);
        bits.Set(4095, 2);

        Assert.True(bits.IsDirty(0));
        Assert.True(bits.IsDirty(8191));
        Assert.False(bits.IsDirty(8192));
        Assert.Equal(8192, bits.DirtyBytes);
    }

    [Fact]
    public void ClearingPartOfAGranuleLeavesItDirtySoNoWriteIsLost()
    {
        var bits = new DirtyBitmap(1 << 20, 4096);
        bits.Set(0, 3 * 4096);
        bits.Clear(100, (2 * 4096) - 100 + 10);

        Assert.True(bits.IsDirty(0));
        Assert.False(bits.IsDirty(4096));
        Assert.True(bits.IsDirty(8192));
    }

    [Fact]
    public void RunsAlternateAndAreCutAtTheDisksEnd()
    {
        var bits = new DirtyBitmap(10 * 4096 + 100, 4096);
        bits.Set(4096, 4096);
        bits.Set(10 * 4096, 1);

        Assert.Equal([(4096L, 4096L), (10L * 4096, 100L)], bits.DirtyRuns());
        Assert.Equal((false, 4096L), bits.GetRun(0, long.MaxValue));
        Assert.Equal((true, 100L), bits.GetRun(10 * 4096, 1 << 20));
        Assert.Equal(4096 + 100, bits.DirtyBytes);
    }

    [Fact]
    public void MergingAFinerBitmapIntoACoarserOneIsASuperset()
    {
        var fine = new DirtyBitmap(1 << 20, 512);
        fine.Set(70000, 1);
        fine.Set(200_000, 3000);
        var coarse = new DirtyBitmap(1 << 20, 65536);

        coarse.MergeFrom(fine);

        foreach (var (offset, length) in fine.DirtyRuns())
        {
            for (long b = offset; b < offset + length; b += 512)
            {
                Assert.True(coarse.IsDirty(b), $"byte {b} is dirty in the source but not in the merge");
            }
        }

        Assert.Equal([(65536L, 65536L), (196608L, 65536L)], coarse.DirtyRuns());
    }

    [Fact]
    public void MergingACoarserBitmapIntoAFinerOneMarksEveryFineGranuleItCovers()
    {
        var coarse = new DirtyBitmap(1 << 20, 65536);
        coarse.Set(65536, 1);
        var fine = new DirtyBitmap(1 << 20, 4096);

        fine.MergeFrom(coarse);

        Assert.Equal([(65536L, 65536L)], fine.DirtyRuns());
    }

    [Fact]
    public void MergingBitmapsOfDifferentDisksIsRefused()
    {
        var a = new DirtyBitmap(1 << 20, 4096);
        var b = new DirtyBitmap(2 << 20, 4096);
        Assert.Throws<BlockException>(() => a.MergeFrom(b));
    }

    [Fact]
    public void Sha256OfAKnownPatternMatchesOneComputedByHand()
    {
        // 100 granules of 512 bytes: two little-endian words. Granules 0-2 in the first; 64 and 99
        // (bits 0 and 35) in the second. Expected: sha256 of 07 00 00 00 00 00 00 00 01 00 00 00 08 00 00 00.
        var bits = new DirtyBitmap(100 * 512, 512);
        bits.Set(0, 3 * 512);
        bits.Set(64 * 512, 1);
        bits.Set(99 * 512, 512);

        Assert.Equal("efe232dd26f734c0ef8f99a3bee2fbfdc1418b8af3f924eb65018d093a0449cf", bits.Sha256());
    }

    [Fact]
    public void Sha256OfAnEmptyOneWordBitmapIsThatOfEightZeroBytes()
    {
        Assert.Equal("af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc", new DirtyBitmap(64 * 512, 512).Sha256());
    }

    [Fact]
    public void BitsPastTheLastGranuleStayClearWhateverIsLoadedOrSet()
    {
        var bits = new DirtyBitmap(3 * 512, 512);
        bits.Load([ulong.MaxValue]);
        bits.SetAll();
        bits.Set(0, long.MaxValue / 2);

        Assert.Equal(0b111UL, bits.Words[0]);
        Assert.Equal(3 * 512, bits.DirtyBytes);
    }

    [Fact]
    public void TheLastGranuleCountsOnlyUpToTheDisksEnd()
    {
        var bits = new DirtyBitmap(4096 + 10, 4096);
        bits.Set(4096, 1);
        bits.Clear(4096, 10);

        Assert.Equal(0, bits.DirtyBytes);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(256)]
    [InlineData(3000)]
    [InlineData(128L << 20)]
    public void AGranularityThatIsNotAPowerOfTwoInRangeIsRefused(long granularity)
    {
        Assert.Throws<BlockException>(() => new DirtyBitmap(1 << 20, granularity));
    }
}
