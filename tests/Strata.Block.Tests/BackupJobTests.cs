using Strata.Block.Backup;
using Strata.Block.Bitmaps;
using Strata.Block.Graph;
using Strata.Block.Tests.Graph;
using Strata.TestKit;
using Xunit.Abstractions;

namespace Strata.Block.Tests;

public sealed class BackupJobTests(ITestOutputHelper output)
{
    private const int DiskSize = 4 << 20;
    private const int Cluster = 64 << 10;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task AFullBackupUnderRandomGuestWritesHoldsTheDiskAsItWasAtTheJobsStart(int seed)
    {
        output.WriteLine($"seed {seed}");
        await using var drive = await OpenDriveAsync();
        var random = new Random(seed);
        await FillAsync(drive, random);
        var atStart = await ReadAllAsync(drive.Gate);
        var target = new MemoryNode(DiskSize);
        var job = drive.PrepareBackup("b", target, new BackupJobOptions { ChunkSize = Cluster, Copiers = 2 });

        // Paused at its first step. Once PointInTime completes (what drive-backup waits for before it
        // replies) the filter is in, so every write below copies before it writes.
        job.Pause();
        Assert.False(job.PointInTime.IsCompleted);
        job.Start();
        await job.PointInTime;
        Assert.IsType<CopyBeforeWriteNode>(drive.Root);
        var model = (byte[])atStart.Clone();
        await WriteRandomlyAsync(drive.Gate, random, model, 40);
        var writer = WriteRandomlyAsync(drive.Gate, random, model, 200);
        job.Resume();
        await writer;
        await job.Completion;

        Assert.Null(job.Error);
        Assert.True(atStart.AsSpan().SequenceEqual(target.ToArray()), "the target differs from the disk at the job's start");
        var now = await ReadAllAsync(drive.Gate);
        Assert.True(model.AsSpan().SequenceEqual(now), "the guest's disk differs from its writes");
        Assert.Equal(job.TotalProgress, job.CurrentProgress);
        Assert.IsNotType<CopyBeforeWriteNode>(drive.Root);
    }

    [Fact]
    public async Task ACancelledBackupLeavesTheGuestsDiskAndChainAsTheyWere()
    {
        await using var drive = await OpenDriveAsync();
        var random = new Random(7);
        await FillAsync(drive, random);
        var root = drive.Root;
        var model = await ReadAllAsync(drive.Gate);
        var job = drive.PrepareBackup("b", new MemoryNode(DiskSize), new BackupJobOptions { ChunkSize = Cluster });
        job.Pause();
        job.Start();
        await WaitUntilAsync(() => drive.Root is CopyBeforeWriteNode);
        await WriteRandomlyAsync(drive.Gate, random, model, 30);
        job.Cancel();
        await job.Completion;

        Assert.True(job.Cancelled);
        Assert.Same(root, drive.Root);
        Assert.False(drive.IsBusy);
        var now = await ReadAllAsync(drive.Gate);
        Assert.True(model.AsSpan().SequenceEqual(now));
    }

    [Fact]
    public async Task ATargetThatFillsUpFailsTheJobWhileTheGuestsWritesGoOn()
    {
        await using var drive = await OpenDriveAsync();
        var random = new Random(11);
        await FillAsync(drive, random);
        var model = await ReadAllAsync(drive.Gate);
        var job = drive.PrepareBackup("b", new FullNode(new MemoryNode(DiskSize)), new BackupJobOptions { ChunkSize = Cluster });
        job.Pause();
        job.Start();
        await WaitUntilAsync(() => drive.Root is CopyBeforeWriteNode);
        await WriteRandomlyAsync(drive.Gate, random, model, 20);

        // The first copy-before-write failed: the job stops by itself, paused or not.
        await job.Completion;

        Assert.Contains("No space", job.Error, StringComparison.OrdinalIgnoreCase);
        var now = await ReadAllAsync(drive.Gate);
        Assert.True(model.AsSpan().SequenceEqual(now));
        Assert.IsNotType<CopyBeforeWriteNode>(drive.Root);
    }

    [Fact]
    public async Task ADriveWithABackupRefusesASecondBackupUntilItConcludes()
    {
        await using var drive = await OpenDriveAsync();

        // Data to copy: a job with nothing to copy concludes before it ever looks at a pause.
        await drive.Gate.WriteAsync(0, Filled(DiskSize, 0x11));
        var job = drive.PrepareBackup("b", new MemoryNode(DiskSize), new BackupJobOptions());
        job.Pause();
        job.Start();

        var again = Assert.Throws<BlockException>(() => drive.PrepareBackup("c", new MemoryNode(DiskSize), new BackupJobOptions()));
        Assert.Contains("backup job 'b'", again.Message);
        job.Cancel();
        await job.Completion;
        Assert.False(drive.IsBusy);
    }

    [Fact]
    public async Task SyncNoneCopiesOnlyWhatTheGuestOverwritesUntilCancelled()
    {
        await using var drive = await OpenDriveAsync();
        await drive.Gate.WriteAsync(0, Filled(DiskSize, 0x11));
        var target = new MemoryNode(DiskSize);
        var job = drive.PrepareBackup("b", target, new BackupJobOptions { Sync = BackupSync.None });
        job.Start();
        await WaitUntilAsync(() => drive.Root is CopyBeforeWriteNode);
        await drive.Gate.WriteAsync(Cluster * 3 + 100, Filled(10, 0x22));
        job.Cancel();
        await job.Completion;

        var copied = target.ToArray();
        Assert.All(copied.AsSpan(Cluster * 3, Cluster).ToArray(), b => Assert.Equal(0x11, b));
        Assert.Equal(Cluster, copied.Count(b => b != 0));
    }

    [Fact]
    public async Task SyncTopCopiesOnlyWhatTheTopLayerAllocates()
    {
        var opener = new MemoryLayerOpener();
        opener.Add("base.img", DiskSize);
        opener.Add("top.img", DiskSize, "base.img");
        await using (var baseNode = await opener.OpenLayerAsync("base.img", new LayerOpenOptions()))
        {
            await baseNode.WriteAsync(0, Filled(DiskSize, 0x33));
        }

        await using var drive = await Drive.OpenAsync("d", "top.img", new LayerOpenOptions(), opener);
        await drive.Gate.WriteAsync(Cluster * 2, Filled(Cluster, 0x44));
        var target = new MemoryNode(DiskSize);
        var job = drive.PrepareBackup("b", target, new BackupJobOptions { Sync = BackupSync.Top });
        job.Start();
        await job.Completion;

        Assert.Null(job.Error);
        var copied = target.ToArray();
        Assert.Equal(Cluster, copied.Count(b => b != 0));
        Assert.All(copied.AsSpan(Cluster * 2, Cluster).ToArray(), b => Assert.Equal(0x44, b));
    }

    [Fact]
    public async Task AnIncrementalBackupCopiesTheBitmapsClustersAsTheyWereAndLeavesOnlyTheNewWrites()
    {
        await using var drive = await OpenDriveAsync();
        await AddBitmapAsync(drive, "b0");
        await drive.Gate.WriteAsync(Cluster * 1, Filled(Cluster, 0x51));
        await drive.Gate.WriteAsync(Cluster * 5, Filled(Cluster, 0x55));
        var target = new MemoryNode(DiskSize);
        var job = drive.PrepareBackup("b", target, new BackupJobOptions { Sync = BackupSync.Bitmap, Bitmap = "b0" });
        job.Pause();
        job.Start();
        await WaitUntilAsync(() => drive.Root is CopyBeforeWriteNode);
        await drive.Gate.WriteAsync(Cluster * 5, Filled(Cluster, 0x66));
        await drive.Gate.WriteAsync(Cluster * 9, Filled(Cluster, 0x69));
        job.Resume();
        await job.Completion;

        Assert.Null(job.Error);
        var copied = target.ToArray();
        Assert.All(copied.AsSpan(Cluster * 1, Cluster).ToArray(), b => Assert.Equal(0x51, b));
        Assert.All(copied.AsSpan(Cluster * 5, Cluster).ToArray(), b => Assert.Equal(0x55, b));
        Assert.Equal(2 * Cluster, copied.Count(b => b != 0));
        Assert.Equal([(Cluster * 5L, (long)Cluster), (Cluster * 9L, (long)Cluster)], drive.Bitmaps.Find("b0")!.Bits.DirtyRuns());
        Assert.False(drive.Bitmaps.Find("b0")!.Busy);
    }

    /// <summary>
    /// The bitmap holds clusters 1 and 3; the target takes one write (cluster 1) and then is full, so
    /// the job fails having copied cluster 1 only; meanwhile the guest wrote cluster 7.
    /// </summary>
    [Theory]
    [InlineData(BitmapSyncMode.OnSuccess, true, new[] { 7 })]
    [InlineData(BitmapSyncMode.Always, true, new[] { 7 })]
    [InlineData(BitmapSyncMode.Never, true, new[] { 1, 3, 7 })]
    [InlineData(BitmapSyncMode.OnSuccess, false, new[] { 1, 3, 7 })]
    [InlineData(BitmapSyncMode.Never, false, new[] { 1, 3, 7 })]
    [InlineData(BitmapSyncMode.Always, false, new[] { 3, 7 })]
    public async Task TheBitmapEndsAsItsModeSays(BitmapSyncMode mode, bool succeeds, int[] dirtyClusters)
    {
        await using var drive = await OpenDriveAsync();
        await AddBitmapAsync(drive, "b0");
        await drive.Gate.WriteAsync(Cluster * 1, Filled(Cluster, 1));
        await drive.Gate.WriteAsync(Cluster * 3, Filled(Cluster, 3));
        IBlockNode target = new MemoryNode(DiskSize);
        if (!succeeds)
        {
            target = new FullNode(target, writesBeforeFull: 1);
        }

        var job = drive.PrepareBackup("b", target, new BackupJobOptions
        {
            Sync = BackupSync.Bitmap, Bitmap = "b0", BitmapMode = mode, ChunkSize = Cluster, Copiers = 1,
        });
        job.Pause();
        job.Start();
        await WaitUntilAsync(() => drive.Root is CopyBeforeWriteNode);
        await drive.Gate.WriteAsync(Cluster * 7, Filled(100, 7));
        job.Resume();
        await job.Completion;

        Assert.Equal(succeeds, job.Error is null);
        Assert.Equal(dirtyClusters.Select(c => ((long)c * Cluster, (long)Cluster)), drive.Bitmaps.Find("b0")!.Bits.DirtyRuns());
    }

    [Fact]
    public async Task ABitmapInUseByABackupCannotBeClearedOrUsedByAnother()
    {
        await using var drive = await OpenDriveAsync();
        await AddBitmapAsync(drive, "b0");
        await drive.Gate.WriteAsync(0, Filled(Cluster, 1));
        var job = drive.PrepareBackup("b", new MemoryNode(DiskSize), new BackupJobOptions { Sync = BackupSync.Bitmap, Bitmap = "b0" });
        job.Pause();
        job.Start();
        await WaitUntilAsync(() => drive.Root is CopyBeforeWriteNode);

        await Assert.ThrowsAsync<BlockException>(() => Drive.ChangeBitmapsAsync([new BitmapAction(BitmapActionKind.Clear, drive, "b0")]));
        job.Cancel();
        await job.Completion;
        Assert.False(drive.Bitmaps.Find("b0")!.Busy);
    }

    [Fact]
    public async Task SyncBitmapWithoutABitmapAndAMissingBitmapAreRefused()
    {
        await using var drive = await OpenDriveAsync();
        Assert.Contains("need a bitmap", Assert.Throws<BlockException>(() =>
            drive.PrepareBackup("b", new MemoryNode(DiskSize), new BackupJobOptions { Sync = BackupSync.Bitmap })).Message);
        Assert.Contains("'nope' not found", Assert.Throws<BlockException>(() =>
            drive.PrepareBackup("b", new MemoryNode(DiskSize), new BackupJobOptions { Sync = BackupSync.Bitmap, Bitmap = "nope" })).Message);
        Assert.Contains("smaller", Assert.Throws<BlockException>(() =>
            drive.PrepareBackup("b", new MemoryNode(DiskSize / 2), new BackupJobOptions())).Message);
        Assert.False(drive.IsBusy);
    }

    private static async Task<Drive> OpenDriveAsync()
    {
        var opener = new MemoryLayerOpener();
        opener.Add("disk.img", DiskSize);
        return await Drive.OpenAsync("d", "disk.img", new LayerOpenOptions(), opener);
    }

    private static Task AddBitmapAsync(Drive drive, string name) =>
        Drive.ChangeBitmapsAsync([new BitmapAction(BitmapActionKind.Add, drive, name)]);

    private static byte[] Filled(int length, byte value)
    {
        var data = new byte[length];
        Array.Fill(data, value);
        return data;
    }

    private static async Task FillAsync(Drive drive, Random random)
    {
        var data = new byte[DiskSize];
        random.NextBytes(data);

        // Leave some clusters zero: a backup skips them on an empty target.
        data.AsSpan(Cluster * 4, Cluster * 3).Clear();
        await drive.Gate.WriteAsync(0, data);
    }

    /// <summary>Random writes, write-zeroes and discards of 1 byte to 3 clusters through the gate, applied to the model (a discard as zeroes: the memory image reads so).</summary>
    private static async Task WriteRandomlyAsync(RequestGate gate, Random random, byte[] model, int count)
    {
        for (int i = 0; i < count; i++)
        {
            int length;
            long offset;
            int kind;
            byte[] data;
            lock (random)
            {
                length = random.Next(1, 3 * Cluster);
                offset = random.NextInt64(0, DiskSize - length);
                kind = random.Next(10);
                data = new byte[length];
                random.NextBytes(data);
            }

            if (kind == 0)
            {
                await gate.WriteZeroesAsync(offset, length);
                Array.Clear(data);
            }
            else
            {
                await gate.WriteAsync(offset, data);
            }

            lock (model)
            {
                data.CopyTo(model, offset);
            }
        }
    }

    private static async Task<byte[]> ReadAllAsync(RequestGate gate)
    {
        var all = new byte[gate.Size];
        await gate.ReadAsync(0, all);
        return all;
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (int i = 0; i < 1000 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition(), "the condition never came");
    }

    /// <summary>A target that takes <c>writesBeforeFull</c> writes, then answers every write with ENOSPC.</summary>
    private sealed class FullNode(IBlockNode inner, int writesBeforeFull = 0) : DelegatingNode(inner)
    {
        private int _left = writesBeforeFull;

        public override ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
            => Interlocked.Decrement(ref _left) >= 0 ? base.WriteAsync(offset, data, flags, cancellationToken) : throw Full();

        public override ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
            => Interlocked.Decrement(ref _left) >= 0 ? base.WriteZeroesAsync(offset, length, flags, cancellationToken) : throw Full();

        private static BlockException Full() => new(BlockError.NoSpace, "No space left on device");
    }
}
