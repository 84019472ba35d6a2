using Strata.Block.Bitmaps;
using Strata.Block.Graph;
using Strata.Block.Live;
using Strata.Block.Tests.Graph;
using Strata.TestKit;

namespace Strata.Block.Tests;

public sealed class DriveBitmapsTests
{
    private const int DiskSize = 1 << 20;

    [Fact]
    public async Task AnAddedBitmapHas64KiBGranularityTheDrivesSizeAndRecordsEveryWrite()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("b0"));
        await t.Drive.Gate.WriteAsync(70000, new byte[4096]);
        await t.Drive.Gate.DiscardAsync(4096 * 100, 4096);

        var b = t.Drive.Bitmaps.Find("b0")!;
        Assert.Equal(64 << 10, b.Bits.Granularity);
        Assert.Equal(DiskSize, b.Bits.DiskSize);
        Assert.True(b.Recording);
        Assert.False(b.Persistent);
        Assert.Equal([(65536L, 65536L), (393216L, 65536L)], b.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ADisabledBitmapMarksNothingUntilEnabled()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("b0") with { Disabled = true, Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(0, new byte[4096]);
        await t.RunAsync(Act(BitmapActionKind.Enable, "b0"));
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);
        await t.RunAsync(Act(BitmapActionKind.Disable, "b0"));
        await t.Drive.Gate.WriteAsync(16384, new byte[4096]);

        Assert.Equal([(8192L, 4096L)], t.Drive.Bitmaps.Find("b0")!.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ADriveWithoutRecordingBitmapsHasNoObserverOnItsGate()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("b0"));
        await t.RunAsync(Act(BitmapActionKind.Disable, "b0"));
        var observer = new Counting();
        using (var drain = await t.Drive.Gate.DrainAsync())
        {
            t.Drive.Gate.AddObserver(observer);
        }

        await t.Drive.Gate.WriteAsync(0, new byte[4096]);

        // The bitmaps' observer went away with the last recording bitmap: only the counting one is told.
        Assert.Equal(1, observer.Count);
        Assert.Equal(0, t.Drive.Bitmaps.Find("b0")!.Bits.DirtyBytes);
    }

    [Theory]
    [InlineData("", "Bitmap name cannot be empty")]
    [InlineData("dup", "Bitmap already exists: dup")]
    public async Task ABadOrTakenNameIsRefused(string name, string message)
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("dup"));
        var e = await Assert.ThrowsAsync<BlockException>(() => t.RunAsync(Add(name)));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public async Task ANameOf1023BytesIsTakenAndOneOf1024IsRefused()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add(new string('é', 511) + "x"));
        var e = await Assert.ThrowsAsync<BlockException>(() => t.RunAsync(Add(new string('x', 1024))));
        Assert.Contains("too long", e.Message);
    }

    [Theory]
    [InlineData(256)]
    [InlineData(1000)]
    public async Task AGranularityBelow512OrNotAPowerOfTwoIsRefusedInQemusWords(long granularity)
    {
        await using var t = await TestDrive.OpenAsync();
        var e = await Assert.ThrowsAsync<BlockException>(() => t.RunAsync(Add("b") with { Granularity = granularity }));
        Assert.Equal("Granularity must be power of 2, and at least 512", e.Message);
    }

    [Fact]
    public async Task RemoveClearAndUnknownNames()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("b0"));
        await t.Drive.Gate.WriteAsync(0, new byte[4096]);
        await t.RunAsync(Act(BitmapActionKind.Clear, "b0"));
        Assert.Equal(0, t.Drive.Bitmaps.Find("b0")!.Bits.DirtyBytes);
        await t.RunAsync(Act(BitmapActionKind.Remove, "b0"));
        Assert.Null(t.Drive.Bitmaps.Find("b0"));
        var e = await Assert.ThrowsAsync<BlockException>(() => t.RunAsync(Act(BitmapActionKind.Remove, "b0")));
        Assert.Equal("Dirty bitmap 'b0' not found", e.Message);
    }

    [Fact]
    public async Task MergeAddsTheSourcesBitsAcrossGranularitiesAsASuperset()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("fine") with { Granularity = 512 }, Add("coarse") with { Disabled = true });
        await t.Drive.Gate.WriteAsync(70000, new byte[1]);
        await t.RunAsync(Act(BitmapActionKind.Merge, "coarse") with { Sources = [new BitmapSource(t.Drive, "fine")] });

        Assert.Equal([(65536L, 65536L)], t.Drive.Bitmaps.Find("coarse")!.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ABusyBitmapCannotBeRemovedClearedDisabledOrMergedInto()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("b0"), Add("src"));
        using var use = t.Drive.Bitmaps.Find("b0")!.Use();

        foreach (var kind in new[] { BitmapActionKind.Remove, BitmapActionKind.Clear, BitmapActionKind.Disable, BitmapActionKind.Merge })
        {
            var e = await Assert.ThrowsAsync<BlockException>(() => t.RunAsync(Act(kind, "b0") with { Sources = [new BitmapSource(t.Drive, "src")] }));
            Assert.Equal("Bitmap 'b0' is currently in use by another operation and cannot be used", e.Message);
        }

        Assert.True(t.Drive.Bitmaps.Find("b0")!.Recording);
    }

    [Fact]
    public async Task ACheckpointWritesTheBitsOfFileBitmapsWhileTheyGoOnRecording()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("t0") with { File = "t0.dbmp", Granularity = 4096 }, Add("mem") with { Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);

        Assert.Empty(await t.Drive.CheckpointBitmapsAsync());
        await t.Drive.Gate.WriteAsync(65536, new byte[4096]);

        Assert.Equal([(8192L, 4096L)], files["t0.dbmp"].Bits().DirtyRuns());
        Assert.Equal(BitmapStoreState.Active, files["t0.dbmp"].State);
        Assert.Contains("checkpoint", files["t0.dbmp"].Calls);
        Assert.Equal([(8192L, 4096L), (65536L, 4096L)], t.Drive.Bitmaps.Find("t0")!.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ACheckpointLeavesDisabledBitmapsAndDrivesWithoutFilesAlone()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        Assert.Empty(await t.Drive.CheckpointBitmapsAsync());
        await t.RunAsync(Add("t0") with { File = "t0.dbmp", Disabled = true });
        Assert.Empty(await t.Drive.CheckpointBitmapsAsync());
        Assert.DoesNotContain("checkpoint", files["t0.dbmp"].Calls);
    }

    [Fact]
    public async Task AnInconsistentBitmapCanOnlyBeRemovedOrClearedAndIsUsableOnceCleared()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("b0"));
        t.Image.Bitmaps.Add(new MemoryBitmapFile("crashed", DiskSize, 65536) { State = BitmapStoreState.Active, CrashSafe = false });
        await using var reopened = await t.ReopenAsync();

        var crashed = reopened.Drive.Bitmaps.Find("crashed")!;
        Assert.True(crashed.Inconsistent);
        Assert.False(crashed.Recording);
        foreach (var kind in new[] { BitmapActionKind.Enable, BitmapActionKind.Disable })
        {
            var e = await Assert.ThrowsAsync<BlockException>(() => reopened.RunAsync(Act(kind, "crashed")));
            Assert.StartsWith("Bitmap 'crashed' is inconsistent and cannot be used", e.Message);
        }

        await reopened.RunAsync(Add("t") with { Disabled = true });
        await Assert.ThrowsAsync<BlockException>(() => reopened.RunAsync(Act(BitmapActionKind.Merge, "t") with { Sources = [new BitmapSource(reopened.Drive, "crashed")] }));
        await reopened.RunAsync(Act(BitmapActionKind.Clear, "crashed"), Act(BitmapActionKind.Enable, "crashed"));
        Assert.True(crashed.Recording);
        Assert.False(crashed.Inconsistent);
    }

    [Fact]
    public async Task ATransactionWithOneBadActionChangesNothingAndLeavesNoStoreBehind()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("b0"));

        await Assert.ThrowsAsync<BlockException>(() => t.RunAsync(
            Add("new") with { File = "new.dbmp" },
            Act(BitmapActionKind.Disable, "b0"),
            Act(BitmapActionKind.Clear, "missing")));

        Assert.Null(t.Drive.Bitmaps.Find("new"));
        Assert.False(files.Exists("new.dbmp"));
        Assert.True(t.Drive.Bitmaps.Find("b0")!.Recording);
    }

    [Fact]
    public async Task ActionsInOneTransactionSeeTheEarlierOnes()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("a"));
        await t.Drive.Gate.WriteAsync(0, new byte[4096]);

        await t.RunAsync(
            Add("b") with { Disabled = true },
            Act(BitmapActionKind.Merge, "b") with { Sources = [new BitmapSource(t.Drive, "a")] },
            Act(BitmapActionKind.Remove, "a"),
            Add("a") with { Granularity = 4096 });

        Assert.Equal(65536, t.Drive.Bitmaps.Find("b")!.Bits.DirtyBytes);
        Assert.Equal(0, t.Drive.Bitmaps.Find("a")!.Bits.DirtyBytes);
        Assert.Equal(["b", "a"], t.Drive.Bitmaps.All.Select(b => b.Name));
    }

    [Fact]
    public async Task AFileBitmapIsCreatedTrackedAndSavedConsistentAtCloseThenReloaded()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("t0") with { File = "t0.dbmp", Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);
        var file = files["t0.dbmp"];
        Assert.Equal(BitmapStoreState.Active, file.State);
        Assert.Equal(1, file.BeforeWrites);

        await using var reopened = await t.ReopenAsync();
        Assert.Equal(["load", "begin", "save Consistent", "dispose"], file.Calls);
        await reopened.RunAsync(Add("t0") with { File = "t0.dbmp" });
        Assert.Equal([(8192L, 4096L)], reopened.Drive.Bitmaps.Find("t0")!.Bits.DirtyRuns());
    }

    [Fact]
    public async Task AnExistingFileOfAnotherDiskSizeOrGranularityIsRefused()
    {
        var files = new MemoryBitmapFiles();
        await (await files.CreateAsync("other.dbmp", DiskSize * 2, 4096)).DisposeAsync();
        await (await files.CreateAsync("fine.dbmp", DiskSize, 4096)).DisposeAsync();
        await using var t = await TestDrive.OpenAsync(files);

        var size = await Assert.ThrowsAsync<BlockException>(() => t.RunAsync(Add("o") with { File = "other.dbmp" }));
        var granularity = await Assert.ThrowsAsync<BlockException>(() => t.RunAsync(Add("f") with { File = "fine.dbmp", Granularity = 65536 }));

        Assert.Contains("2097152-byte disk", size.Message);
        Assert.Contains("granularity of 4096", granularity.Message);
        Assert.False(files["other.dbmp"].Open);
    }

    [Fact]
    public async Task ARecoveredFileAfterACrashHoldsEveryWriteThatWasMarkedBefore()
    {
        var files = new MemoryBitmapFiles();

        // Never closed: the drive "crashes" with its bitmap tracking.
        var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("t0") with { File = "t0.dbmp", Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);
        var store = (MemoryBitmapStore)t.Drive.Bitmaps.Find("t0")!.Store!;
        store.Crash();

        var recovered = await files.OpenAsync("t0.dbmp");
        var bits = new DirtyBitmap(DiskSize, 4096);
        var result = await recovered.LoadAsync(bits);

        Assert.True(result.Recovered);
        Assert.True(bits.IsDirty(8192));
        await recovered.DisposeAsync();
    }

    [Fact]
    public async Task APersistentBitmapWithoutAFileLivesInTheTopImageAndIsLoadedAgainAtOpen()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("q") with { Persistent = true, Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(4096, new byte[4096]);
        Assert.Equal(BitmapStoreState.Active, t.Image.Bitmaps.Single().State);

        await using var reopened = await t.ReopenAsync();
        Assert.Equal(["load", "begin", "save Consistent", "dispose", "load", "begin"], t.Image.Bitmaps.Single().Calls);
        var q = reopened.Drive.Bitmaps.Find("q")!;
        Assert.True(q.Recording);
        Assert.True(q.Persistent);
        Assert.Equal([(4096L, 4096L)], q.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ADisabledPersistentBitmapIsLoadedDisabled()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("q") with { Persistent = true });
        await t.RunAsync(Act(BitmapActionKind.Disable, "q"));

        await using var reopened = await t.ReopenAsync();
        Assert.False(reopened.Drive.Bitmaps.Find("q")!.Recording);
    }

    [Fact]
    public async Task RemovingAPersistentBitmapRemovesItFromTheImageButLeavesAFile()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("q") with { Persistent = true }, Add("f") with { File = "f.dbmp" });
        await t.RunAsync(Act(BitmapActionKind.Remove, "q"), Act(BitmapActionKind.Remove, "f"));

        Assert.Empty(t.Image.Bitmaps);
        Assert.True(files.Exists("f.dbmp"));
        Assert.Equal(BitmapStoreState.Consistent, files["f.dbmp"].State);
    }

    [Fact]
    public async Task AtASnapshotABitmapInTheTopImageIsSavedFrozenThereAndGoesOnTrackingInTheOverlay()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("q") with { Persistent = true, Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(0, new byte[4096]);

        var result = await Drive.SnapshotAsync([new SnapshotRequest(t.Drive, "overlay.img", SnapshotMode.AbsolutePaths)]);
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);

        Assert.Empty(result.BitmapProblems);
        var old = t.Image.Bitmaps.Single();
        Assert.Equal(BitmapStoreState.Frozen, old.State);
        Assert.Equal([(0L, 4096L)], old.Bits().DirtyRuns());
        var moved = t.Opener["overlay.img"].Bitmaps.Single();
        Assert.Equal(BitmapStoreState.Active, moved.State);
        var q = t.Drive.Bitmaps.Find("q")!;
        Assert.Equal(Path.GetFullPath("overlay.img"), q.HostLayer!.FileName);
        Assert.Equal([(0L, 4096L), (8192L, 4096L)], q.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ABitmapInTheTopImageEnabledInTheSnapshotsTransactionTracksInTheOverlay()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("q") with { Persistent = true, Granularity = 4096, Disabled = true });

        var result = await Drive.SnapshotAsync([new SnapshotRequest(t.Drive, "overlay.img", SnapshotMode.AbsolutePaths)], t.Bind(Act(BitmapActionKind.Enable, "q")));
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);

        Assert.Empty(result.BitmapProblems);
        var moved = t.Opener["overlay.img"].Bitmaps.Single();
        Assert.Equal(BitmapStoreState.Active, moved.State);
        Assert.True(moved.Enabled);
        Assert.Equal(BitmapStoreState.Frozen, t.Image.Bitmaps.Single().State);
        Assert.Equal([(8192L, 4096L)], t.Drive.Bitmaps.Find("q")!.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ABitmapInTheTopImageThatStaysDisabledAtASnapshotIsSavedInTheOverlayNotLeftTracking()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("q") with { Persistent = true, Granularity = 4096, Disabled = true });

        var result = await Drive.SnapshotAsync([new SnapshotRequest(t.Drive, "overlay.img", SnapshotMode.AbsolutePaths)]);

        Assert.Empty(result.BitmapProblems);
        var moved = t.Opener["overlay.img"].Bitmaps.Single();
        Assert.Equal(BitmapStoreState.Consistent, moved.State);
        Assert.False(moved.Enabled);
    }

    [Fact]
    public async Task SetDirtysHandOffStopsTheOldBitmapAtTheNextSnapshotAndSavesItFrozen()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("t0") with { File = "t0.dbmp", HandOff = true, Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(0, new byte[4096]);
        await t.RunAsync(Add("t1") with { File = "t1.dbmp", HandOff = true, Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);
        Assert.True(t.Drive.Bitmaps.Find("t0")!.Recording);

        await Drive.SnapshotAsync([new SnapshotRequest(t.Drive, "tmp.img", SnapshotMode.AbsolutePaths)]);
        await t.Drive.Gate.WriteAsync(16384, new byte[4096]);

        var t0 = files["t0.dbmp"];
        Assert.Equal(BitmapStoreState.Frozen, t0.State);
        Assert.Equal([(0L, 4096L), (8192L, 4096L)], t0.Bits().DirtyRuns());
        Assert.False(t.Drive.Bitmaps.Find("t0")!.Recording);
        Assert.Equal([(8192L, 4096L), (16384L, 4096L)], t.Drive.Bitmaps.Find("t1")!.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ATransactionStopsOneBitmapAndStartsAnotherExactlyAtTheSnapshot()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("t0") with { File = "t0.dbmp", Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(0, new byte[4096]);

        var result = await Drive.SnapshotAsync([new SnapshotRequest(t.Drive, "tmp.img", SnapshotMode.AbsolutePaths)],
            t.Bind(Add("t1") with { File = "t1.dbmp", Granularity = 4096 }, Act(BitmapActionKind.Disable, "t0")));
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);

        Assert.Empty(result.BitmapProblems);
        Assert.Equal(BitmapStoreState.Frozen, files["t0.dbmp"].State);
        Assert.Equal([(0L, 4096L)], files["t0.dbmp"].Bits().DirtyRuns());
        Assert.Equal([(8192L, 4096L)], t.Drive.Bitmaps.Find("t1")!.Bits.DirtyRuns());
    }

    [Fact]
    public async Task APersistentBitmapAddedWithASnapshotLivesInTheOverlayNotInTheFrozenImage()
    {
        await using var t = await TestDrive.OpenAsync();
        await Drive.SnapshotAsync([new SnapshotRequest(t.Drive, "tmp.img", SnapshotMode.AbsolutePaths)], t.Bind(Add("q") with { Persistent = true }));
        await t.Drive.Gate.WriteAsync(0, new byte[4096]);

        Assert.Empty(t.Image.Bitmaps);
        Assert.Equal(BitmapStoreState.Active, Assert.Single(t.Opener["tmp.img"].Bitmaps).State);
        Assert.Equal(Path.GetFullPath("tmp.img"), t.Drive.Bitmaps.Find("q")!.HostLayer!.FileName);
    }

    [Fact]
    public async Task ASnapshotWhoseBitmapActionFailsLeavesTheDriveTheBitmapsAndTheFilesAsTheyWere()
    {
        var files = new MemoryBitmapFiles();
        await using var t = await TestDrive.OpenAsync(files);
        await t.RunAsync(Add("q") with { Persistent = true }, Add("t0") with { File = "t0.dbmp" });
        var root = t.Drive.Root;

        await Assert.ThrowsAsync<BlockException>(() => Drive.SnapshotAsync([new SnapshotRequest(t.Drive, "tmp.img", SnapshotMode.AbsolutePaths)],
            t.Bind(Add("t1") with { File = "t1.dbmp" }, Act(BitmapActionKind.Disable, "t0"), Act(BitmapActionKind.Enable, "nope"))));

        Assert.Same(root, t.Drive.Root);
        Assert.False(t.Opener.Exists("tmp.img"));
        Assert.False(files.Exists("t1.dbmp"));
        Assert.True(t.Drive.Bitmaps.Find("t0")!.Recording);
        Assert.Same(root, t.Drive.Bitmaps.Find("q")!.HostLayer);
        Assert.Equal(BitmapStoreState.Active, t.Image.Bitmaps.Single().State);
    }

    [Fact]
    public async Task AMergeMovesABitmapFromTheOverlayIntoTheBaseReplacingTheFrozenCopy()
    {
        await using var t = await TestDrive.OpenAsync();
        await t.RunAsync(Add("q") with { Persistent = true, Granularity = 4096 });
        await t.Drive.Gate.WriteAsync(0, new byte[4096]);
        await Drive.SnapshotAsync([new SnapshotRequest(t.Drive, "tmp.img", SnapshotMode.AbsolutePaths)]);
        await t.Drive.Gate.WriteAsync(8192, new byte[4096]);

        using var job = await t.Drive.PrepareMergeAsync("m", null, null, new CommitJobOptions { AutoComplete = true });
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        await t.Drive.Gate.WriteAsync(16384, new byte[4096]);

        Assert.Null(job.Error);
        var q = t.Drive.Bitmaps.Find("q")!;
        Assert.Equal(Path.GetFullPath("disk.img"), q.HostLayer!.FileName);
        var stored = Assert.Single(t.Image.Bitmaps);
        Assert.Equal(BitmapStoreState.Active, stored.State);
        Assert.Equal([(0L, 4096L), (8192L, 4096L), (16384L, 4096L)], q.Bits.DirtyRuns());
    }

    private static BitmapAction Add(string name) => new(BitmapActionKind.Add, null!, name);

    private static BitmapAction Act(BitmapActionKind kind, string name) => new(kind, null!, name);

    private sealed class Counting : IWriteObserver
    {
        public int Count { get; private set; }

        public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public void OnWritten(long offset, long length) => Count++;
    }

    /// <summary>A drive on one in-memory image "disk.img", with bitmap files in memory.</summary>
    private sealed class TestDrive : IAsyncDisposable
    {
        private TestDrive(MemoryLayerOpener opener, Drive drive, MemoryBitmapFiles files)
        {
            Opener = opener;
            Drive = drive;
            Files = files;
        }

        public MemoryLayerOpener Opener { get; }

        public Drive Drive { get; }

        public MemoryBitmapFiles Files { get; }

        public MemoryImage Image => Opener["disk.img"];

        public static async Task<TestDrive> OpenAsync(MemoryBitmapFiles? files = null, MemoryLayerOpener? opener = null, string top = "disk.img")
        {
            files ??= new MemoryBitmapFiles();
            if (opener is null)
            {
                opener = new MemoryLayerOpener();
                opener.Add("disk.img", DiskSize);
            }

            var drive = await Drive.OpenAsync("d", top, new LayerOpenOptions(), opener);
            drive.Bitmaps.Files = files;
            return new TestDrive(opener, drive, files);
        }

        /// <summary>Closes the drive and opens its top again, as a daemon restart does.</summary>
        public async Task<TestDrive> ReopenAsync()
        {
            string top = Drive.Top.FileName!;
            await Drive.DisposeAsync();
            return await OpenAsync(Files, Opener, top);
        }

        /// <summary>Runs the actions as one transaction on this drive (an action's null drive is this one).</summary>
        public Task RunAsync(params BitmapAction[] actions) => Drive.ChangeBitmapsAsync(Bind(actions));

        public BitmapAction[] Bind(params BitmapAction[] actions) => [.. actions.Select(a => a.Drive is null ? a with { Drive = Drive } : a)];

        public ValueTask DisposeAsync() => Drive.DisposeAsync();
    }
}
