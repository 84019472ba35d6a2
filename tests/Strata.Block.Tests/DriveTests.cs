using Strata.Block.Graph;
using Strata.Block.Live;
using Strata.Block.Tests.Graph;

namespace Strata.Block.Tests;

public sealed class DriveTests
{
    private const int DiskSize = 1 << 20;
    private const int Page = MemoryImage.PageSize;

    [Fact]
    public async Task ADriveOwnsItsWholeChainAndClosesItTopFirst()
    {
        var opener = new MemoryLayerOpener();
        opener.Add("base.img", DiskSize);
        opener.Add("top.img", DiskSize, "base.img");
        var drive = await Drive.OpenAsync("d", "top.img", new LayerOpenOptions(), opener);

        Assert.Equal([Full("top.img"), Full("base.img")], drive.ChainFiles());
        Assert.All(opener.Opened, n => Assert.False(n.BackingEdge.OwnsNode));
        await drive.DisposeAsync();
        Assert.Equal([Full("top.img"), Full("base.img")], opener.Closed);
    }

    [Fact]
    public async Task ASnapshotPutsTheOverlayOnTopFreezesTheOldImageAndTheDriveClosesBoth()
    {
        var opener = new MemoryLayerOpener();
        var disk = opener.Add("disk.img", DiskSize);
        var drive = await Drive.OpenAsync("d", "disk.img", new LayerOpenOptions(), opener);
        await drive.Gate.WriteAsync(0, Pattern(Page, 1));

        var result = await Drive.SnapshotAsync([new SnapshotRequest(drive, "overlay.img", SnapshotMode.AbsolutePaths)]);
        await drive.Gate.WriteAsync(0, Pattern(Page, 2));

        Assert.Empty(result.Unflushed);
        Assert.Equal(Full("overlay.img"), drive.Root.FileName);
        Assert.Equal(Full("disk.img"), opener["overlay.img"].BackingFile);
        Assert.Equal(Pattern(Page, 1), disk.Data.AsSpan(0, Page).ToArray());
        Assert.Equal(NodePermissions.Writer.ForBacking(), ((MemoryImageNode)drive.Root.Backing!).Permissions);
        await drive.DisposeAsync();
        Assert.Equal([Full("overlay.img"), Full("disk.img")], opener.Closed);
    }

    [Fact]
    public async Task ASnapshotOfTwoDrivesThatFailsForTheSecondLeavesBothAsTheyWereAndNoFileBehind()
    {
        var opener = new MemoryLayerOpener();
        opener.Add("a.img", DiskSize);
        opener.Add("b.img", DiskSize);
        opener.Add("elsewhere.img", DiskSize);
        opener.Add("b-overlay.img", DiskSize, "elsewhere.img");
        await using var a = await Drive.OpenAsync("a", "a.img", new LayerOpenOptions(), opener);
        await using var b = await Drive.OpenAsync("b", "b.img", new LayerOpenOptions(), opener);
        var rootA = a.Root;
        var rootB = b.Root;

        var e = await Assert.ThrowsAsync<BlockException>(() => Drive.SnapshotAsync(
        [
            new SnapshotRequest(a, "a-overlay.img", SnapshotMode.AbsolutePaths),
            new SnapshotRequest(b, "b-overlay.img", SnapshotMode.Existing),
        ]));

        Assert.Contains("has backing file", e.Message);
        Assert.Same(rootA, a.Root);
        Assert.Same(rootB, b.Root);
        Assert.False(opener.Exists("a-overlay.img"));
        Assert.True(opener.Exists("b-overlay.img"));
        Assert.All(opener.Opened.Where(n => n.FileName!.EndsWith("overlay.img", StringComparison.Ordinal)), n => Assert.True(n.Closed));
    }

    [Fact]
    public async Task TheSameDriveTwiceInOneSnapshotIsRefusedBeforeAnyFileIsMade()
    {
        var opener = new MemoryLayerOpener();
        opener.Add("disk.img", DiskSize);
        await using var drive = await Drive.OpenAsync("d", "disk.img", new LayerOpenOptions(), opener);

        await Assert.ThrowsAsync<BlockException>(() => Drive.SnapshotAsync(
        [
            new SnapshotRequest(drive, "one.img", SnapshotMode.AbsolutePaths),
            new SnapshotRequest(drive, "two.img", SnapshotMode.AbsolutePaths),
        ]));
        Assert.False(opener.Exists("one.img"));
        Assert.False(opener.Exists("two.img"));
    }

    [Fact]
    public async Task AnActiveMergeReopensTheBaseReadWriteEndsOnItAndClosesTheMergedTop()
    {
        var (opener, drive) = await ChainAsync("base.img", "top.img");
        await using var closing = drive;
        var model = new byte[DiskSize];
        await WriteAsync(drive, model, 4 * Page, Pattern(8 * Page, 3));
        var readOnlyBase = (MemoryImageNode)drive.Root.Backing!;

        using var job = await drive.PrepareMergeAsync("m", top: null, baseNode: null, new CommitJobOptions { AutoComplete = true });
        Assert.True(drive.IsBusy);
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(job.Error);
        Assert.False(drive.IsBusy);
        Assert.Equal(Full("base.img"), drive.Root.FileName);
        Assert.Equal(NodeCapabilities.None, drive.Root.Capabilities & NodeCapabilities.ReadOnly);
        Assert.True(readOnlyBase.Closed);
        Assert.Equal([Full("base.img"), Full("top.img")], opener.Closed);
        Assert.Equal([Full("base.img")], drive.ChainFiles());
        await AssertReadsAsync(drive, model);
    }

    [Fact]
    public async Task AMergeOfAMiddleLayerRepointsTheTopAndRecordsTheBaseAsItsBackingFile()
    {
        var opener = new MemoryLayerOpener();
        opener.Add("base.img", DiskSize);
        opener.Add("middle.img", DiskSize, "base.img");
        opener.Add("top.img", DiskSize, "middle.img");
        opener.Add("middle-data.img", DiskSize);
        await using var drive = await Drive.OpenAsync("d", "top.img", new LayerOpenOptions(), opener);
        var model = new byte[DiskSize];
        Pattern(16 * Page, 5).CopyTo(opener["middle.img"].Data, 0);
        opener["middle.img"].Allocated.AsSpan(0, 16).Fill(true);
        Pattern(16 * Page, 5).CopyTo(model, 0);
        await WriteAsync(drive, model, 8 * Page, Pattern(4 * Page, 6));
        var top = drive.Root;

        using var job = await drive.PrepareMergeAsync("m", drive.FindLayer("middle.img"), null, new CommitJobOptions());
        job.Start();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(job.Error);
        Assert.Same(top, drive.Root);
        Assert.Equal([Full("top.img"), Full("base.img")], drive.ChainFiles());
        Assert.Equal(Full("base.img"), opener["top.img"].BackingFile);
        Assert.Contains(Full("middle.img"), opener.Closed);
        Assert.DoesNotContain(Full("top.img"), opener.Closed);
        Assert.Equal(NodePermissions.Writer.ForBacking(), ((MemoryImageNode)top.Backing!).Permissions);
        await AssertReadsAsync(drive, model);
    }

    [Fact]
    public async Task AMergeWhoseBaseCannotBeReopenedLeavesTheDriveAsItWas()
    {
        var (opener, drive) = await ChainAsync("base.img", "top.img");
        await using var closing = drive;
        var before = drive.Layers().ToList();
        opener.FailOpening = "base.img";

        await Assert.ThrowsAsync<BlockException>(() => drive.PrepareMergeAsync("m", null, null, new CommitJobOptions()));

        Assert.Equal(before, drive.Layers());
        Assert.False(drive.IsBusy);
        Assert.Empty(opener.Closed);
    }

    [Fact]
    public async Task TheDefaultMergeBaseIsTheDeepestLayer()
    {
        var (opener, drive) = await ChainAsync("base.img", "middle.img", "top.img");
        await using var closing = drive;

        Assert.Equal(Full("base.img"), Drive.DefaultMergeBase(drive.Top).FileName);
        Assert.Equal(Full("base.img"), Drive.DefaultMergeBase(drive.FindLayer("middle.img")!).FileName);
    }

    [Fact]
    public async Task AMergeIntoTheTopItselfOrIntoALayerAboveItIsRefused()
    {
        var (opener, drive) = await ChainAsync("base.img", "top.img");
        await using var closing = drive;

        var single = await Assert.ThrowsAsync<BlockException>(() => drive.PrepareMergeAsync("m", drive.FindLayer("base.img"), null, new CommitJobOptions()));
        var upward = await Assert.ThrowsAsync<BlockException>(() => drive.PrepareMergeAsync("m", drive.FindLayer("base.img"), drive.Top, new CommitJobOptions()));
        Assert.Contains("no backing file to merge into", single.Message);
        Assert.Contains("is not below", upward.Message);
    }

    [Fact]
    public async Task ASnapshotWhileAMergeRunsIsRefused()
    {
        var (opener, drive) = await ChainAsync("base.img", "top.img");
        await using var closing = drive;
        using var job = await drive.PrepareMergeAsync("m", null, null, new CommitJobOptions());
        job.Start();

        var e = await Assert.ThrowsAsync<BlockException>(() => drive.PrepareSnapshotAsync("overlay.img", SnapshotMode.AbsolutePaths));

        Assert.Contains("busy", e.Message);
        Assert.False(opener.Exists("overlay.img"));
        job.Cancel();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Full("top.img"), drive.Root.FileName);
    }

    [Fact]
    public async Task ReopeningTheTopReadOnlyFlushesItFirstAndSwapsTheNewOpenIn()
    {
        var opener = new MemoryLayerOpener();
        var disk = opener.Add("disk.img", DiskSize);
        await using var drive = await Drive.OpenAsync("d", "disk.img", new LayerOpenOptions(), opener);
        await drive.Gate.WriteAsync(0, Pattern(Page, 7));
        var old = (MemoryImageNode)drive.Root;

        var reopened = await drive.ReopenLayerAsync(old, readOnly: true);

        Assert.Same(reopened, drive.Root);
        Assert.True(drive.ReadOnly);
        Assert.True(old.Closed);
        Assert.Equal(0, disk.UnflushedWrites);
        Assert.Same(reopened, await drive.ReopenLayerAsync(reopened, readOnly: true));
        var back = new byte[Page];
        await drive.Gate.ReadAsync(0, back);
        Assert.Equal(Pattern(Page, 7), back);
    }

    [Fact]
    public async Task ReopeningABackingLayerReadWriteRepointsTheLayerAboveIt()
    {
        var (opener, drive) = await ChainAsync("base.img", "top.img");
        await using var closing = drive;
        var old = drive.Root.Backing!;

        var writable = await drive.ReopenLayerAsync(old, readOnly: false);

        Assert.Same(writable, drive.Root.Backing);
        Assert.Equal(NodeCapabilities.None, writable.Capabilities & NodeCapabilities.ReadOnly);
        Assert.Equal(NodePermissions.Writer, ((MemoryImageNode)writable).Permissions);
        Assert.Equal([Full("base.img")], opener.Closed);
        await drive.DisposeAsync();
        Assert.Equal([Full("base.img"), Full("top.img"), Full("base.img")], opener.Closed);
    }

    [Fact]
    public async Task AWriteObserverSeesEveryGuestWriteAcrossASnapshotAndAMerge()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var opener = new MemoryLayerOpener();
        opener.Add("disk.img", DiskSize);
        await using var drive = await Drive.OpenAsync("d", "disk.img", new LayerOpenOptions(), opener);
        var observer = new PageMarks(DiskSize);
        drive.AddWriteObserver(observer);
        var model = new byte[DiskSize];
        var written = new bool[DiskSize / Page];

        async Task GuestWritesAsync(int count)
        {
            for (int i = 0; i < count; i++)
            {
                int page = random.Next(DiskSize / Page);
                int pages = Math.Min(random.Next(1, 8), (DiskSize / Page) - page);
                await WriteAsync(drive, model, (long)page * Page, Pattern(pages * Page, random.Next(1, 255)));
                written.AsSpan(page, pages).Fill(true);
            }
        }

        await GuestWritesAsync(50);
        await Drive.SnapshotAsync([new SnapshotRequest(drive, "overlay.img", SnapshotMode.AbsolutePaths)]);
        await GuestWritesAsync(50);
        using var job = await drive.PrepareMergeAsync("m", null, null, new CommitJobOptions { AutoComplete = true });
        job.Start();
        await GuestWritesAsync(50);
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        await GuestWritesAsync(50);

        Assert.True(job.Error is null, $"seed {seed}: {job.Error}");
        Assert.True(written.AsSpan().SequenceEqual(observer.Marked), $"seed {seed}: the observer's marks differ from the pages written");
        Assert.Equal(Full("disk.img"), drive.Root.FileName);
        await AssertReadsAsync(drive, model, seed);
    }

    private static string Full(string file) => Path.GetFullPath(file);

    /// <summary>Images named <paramref name="files"/>, each backed by the one before it, and a drive on the last.</summary>
    private static async Task<(MemoryLayerOpener Opener, Drive Drive)> ChainAsync(params string[] files)
    {
        var opener = new MemoryLayerOpener();
        for (int i = 0; i < files.Length; i++)
        {
            opener.Add(files[i], DiskSize, i == 0 ? null : files[i - 1]);
        }

        return (opener, await Drive.OpenAsync("d", files[^1], new LayerOpenOptions(), opener));
    }

    private static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static async Task WriteAsync(Drive drive, byte[] model, long offset, byte[] data)
    {
        await drive.Gate.WriteAsync(offset, data);
        data.CopyTo(model, offset);
    }

    private static async Task AssertReadsAsync(Drive drive, byte[] model, int? seed = null)
    {
        var seen = new byte[model.Length];
        await drive.Gate.ReadAsync(0, seen);
        Assert.True(model.AsSpan().SequenceEqual(seen), seed is null ? "the drive reads other data than was written" : $"seed {seed}: the drive reads other data than was written");
    }

    /// <summary>A dirty bitmap in miniature: the pages every write touched.</summary>
    private sealed class PageMarks(long size) : IWriteObserver
    {
        public bool[] Marked { get; } = new bool[size / Page];

        public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public void OnWritten(long offset, long length) => Marked.AsSpan((int)(offset / Page), (int)((length + Page - 1) / Page)).Fill(true);
    }
}
