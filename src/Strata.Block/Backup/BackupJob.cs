using Strata.Block.Bitmaps;
using Strata.Block.Copy;
using Strata.Block.Jobs;

namespace Strata.Block.Backup;

/// <summary>
/// A push backup (QEMU's blockdev-backup): copies the drive as it was when the job started into a
/// target node while the guest keeps writing.
/// </summary>
/// <remarks>
/// At the start, under one drain of the drive's gate, the job fixes its point in time: the clusters
/// to copy (all of them, or a bitmap's dirty ones as they are at that instant), a record of the writes
/// that follow (for the bitmap's end state), and a <see cref="CopyBeforeWriteNode"/> on top of the
/// drive. The background copy then goes through the copy engine over the clusters still to copy;
/// copy-before-write takes the others before the guest overwrites them. The amount to copy is fixed
/// at the start, so the job ends however fast the guest writes. Success or failure, the filter leaves
/// under a drain and the drive reads from its layers as before: a backup never changes the disk.
/// </remarks>
public sealed class BackupJob : Job
{
    private readonly Drive _drive;
    private readonly IBlockNode _target;
    private readonly BackupJobOptions _options;
    private readonly DriveBitmap? _bitmap;
    private IDisposable? _bitmapUse;
    private NewWritesBitmap? _newWrites;
    private BackupCopier? _copier;
    private CopyBeforeWriteNode? _filter;
    private int _targetClosed;
    private IDisposable? _heldUntilFinished;

    // Completed once the filter is on the drive (the point in time is fixed), or when the job ends without it.
    private readonly TaskCompletionSource _pointInTime = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal BackupJob(string id, Drive drive, IBlockNode target, BackupJobOptions options, DriveBitmap? bitmap)
        : base(id, "backup")
    {
        _drive = drive;
        _target = target;
        _options = options;
        _bitmap = bitmap;
        _bitmapUse = bitmap?.Use();
    }

    /// <summary>The node the backup writes.</summary>
    public IBlockNode Target => _target;

    public BackupSync Sync => _options.Sync;

    /// <summary>
    /// Completes once the job's point in time is fixed (its filter is on the drive), or once the job
    /// has ended without fixing one. The command that starts the job waits for it before it replies,
    /// as QEMU inserts its filter before drive-backup returns: a guest write the caller makes after
    /// the reply is never in the backup.
    /// </summary>
    public Task PointInTime => _pointInTime.Task;

    /// <summary>
    /// Disposes <paramref name="use"/> when the job finishes, before it concludes (and so before its
    /// completion event): a target node named by blockdev-backup stays busy exactly while the job
    /// writes it, and a blockdev-del sent on the event finds it free. Call before <see cref="Job.Start"/>.
    /// </summary>
    public void ReleaseWhenFinished(IDisposable use) => _heldUntilFinished = use;

    protected override async Task RunAsync(CancellationToken cancellationToken)
    {
        var source = _drive.Root;

        // A target that reads as zeroes everywhere (just made) needs no write for a run of zeroes.
        var targetStatus = await ChainView.Whole(_target).GetStatusAsync(0, _target.Size, cancellationToken);
        bool targetIsZero = targetStatus.IsZero && targetStatus.Length == _target.Size;
        var view = _options.Sync == BackupSync.Top ? new ChainView(source, 1) : ChainView.Whole(source);
        var copy = new BlockCopy(view, _target, new BlockCopyOptions
        {
            ChunkSize = _options.ChunkSize,
            Alignment = _options.ClusterSize,
            Parallelism = _options.Copiers,
            Speed = _options.Speed,
            TargetIsZero = targetIsZero,
            Step = StepAsync,
        });
        var toCopy = new DirtyBitmap(source.Size, _options.ClusterSize);
        using (var drain = await _drive.Gate.DrainAsync(cancellationToken))
        {
            if (_bitmap is null || _options.Sync != BackupSync.Bitmap)
            {
                toCopy.SetAll();
            }
            else
            {
                // Marked at the job's cluster size: a coarser copy is a superset, never a loss.
                toCopy.MergeFrom(_bitmap.Bits);
            }

            if (_bitmap is { Recording: true })
            {
                _newWrites = new NewWritesBitmap(_bitmap.Bits.DiskSize, _bitmap.Bits.Granularity);
                _drive.Gate.AddObserver(_newWrites);
            }

            _copier = new BackupCopier(copy, toCopy, Copied);
            _filter = new CopyBeforeWriteNode(source, _copier);
            _drive.Gate.ReplaceRoot(_filter, drain);
        }

        _pointInTime.TrySetResult();

        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _copier.Failed);
        try
        {
            if (_options.Sync == BackupSync.None)
            {
                // Nothing to copy in the background: the target takes what the guest overwrites until the job is cancelled.
                await Task.Delay(Timeout.Infinite, failed.Token);
            }

            AddTotal(toCopy.DirtyBytes);
            var plan = await RunStepAsync(async () => await copy.PlanAsync(DirtyRuns(toCopy), failed.Token),
                failedWriting: () => false, _options.OnSourceError, failed.Token);
            await copy.RunAsync(plan, cancellationToken: failed.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            _copier.ThrowIfFailed();
            throw;
        }

        _copier.ThrowIfFailed();
        await _target.FlushAsync(cancellationToken);

        // What the plan skipped (zeroes over an empty target, runs the top does not allocate) is done too.
        AddProgress(TotalProgress - CurrentProgress);
    }

    protected override async Task CommitAsync()
    {
        await FinishAsync(succeeded: true);
    }

    protected override async Task AbortAsync()
    {
        await FinishAsync(succeeded: false);
    }

    /// <summary>
    /// Removes the filter and the record of new writes under one drain, sets the bitmap as its mode
    /// says, saves it if it does not record (a recording one is saved when it stops, or at close),
    /// then closes the target if the job owns it.
    /// </summary>
    private async Task FinishAsync(bool succeeded)
    {
        try
        {
            if (_filter is not null || _newWrites is not null)
            {
                // Without a time limit: the job cannot end with its filter still on the drive.
                using var drain = await _drive.Gate.DrainAsync(Timeout.InfiniteTimeSpan);
                if (_filter is not null)
                {
                    _drive.Gate.ReplaceRoot(_filter.Source, drain);
                    _filter = null;
                }

                if (_newWrites is not null)
                {
                    _drive.Gate.RemoveObserver(_newWrites);
                }

                UpdateBitmap(succeeded);
            }
            else
            {
                UpdateBitmap(succeeded);
            }

            if (_bitmap is { Recording: false, Store: { } store } && ChangesBitmap(succeeded))
            {
                await BitmapPlan.SaveAsync(_bitmap, store, _bitmap.StoredState);
            }
        }
        finally
        {
            _pointInTime.TrySetResult();
            Interlocked.Exchange(ref _heldUntilFinished, null)?.Dispose();
            _copier?.Dispose();
            Interlocked.Exchange(ref _bitmapUse, null)?.Dispose();
            if (_options.OwnsTarget && Interlocked.Exchange(ref _targetClosed, 1) == 0)
            {
                await _target.DisposeAsync();
            }
        }
    }

    private bool ChangesBitmap(bool succeeded) =>
        _bitmap is not null && _copier is not null
        && (_options.BitmapMode == BitmapSyncMode.Always || (succeeded && _options.BitmapMode == BitmapSyncMode.OnSuccess));

    // Under the drain that ends the job (or before anything was copied): the bitmap as its mode says
    // (qapi/block-core.json BitmapSyncMode; QEMU's backup_cleanup_sync_bitmap).
    private void UpdateBitmap(bool succeeded)
    {
        if (!ChangesBitmap(succeeded))
        {
            return;
        }

        var bits = _bitmap!.Bits;
        bits.ClearAll();
        if (_newWrites is not null)
        {
            bits.MergeFrom(_newWrites.Bits);
        }

        if (!succeeded)
        {
            // Always, after a failure: what was not copied stays dirty.
            bits.MergeFrom(_copier!.ToCopy);
        }
    }

    private void Copied(long bytes)
    {
        if (_options.Sync == BackupSync.None)
        {
            // No total is known beforehand: what the guest overwrites is the work.
            AddTotal(bytes);
        }

        AddProgress(bytes);
    }

    /// <summary>One chunk of the background copy: the clusters of it copy-before-write has not taken yet, under the job's error policies.</summary>
    private async ValueTask StepAsync(CopyChunk chunk, CancellationToken cancellationToken)
    {
        await PausePointAsync(cancellationToken);
        _copier!.ThrowIfFailed();
        CopyChunk? last = null;
        await RunStepAsync(async () =>
        {
            await _copier.CopyRangeAsync(chunk.Range, int.MaxValue, part => last = chunk.Part(part), cancellationToken);
            return true;
        }, () => last?.IsWriting ?? false, writing => writing ? _options.OnTargetError : _options.OnSourceError, cancellationToken);
    }

    private static IEnumerable<CopyRange> DirtyRuns(DirtyBitmap bits) => bits.DirtyRuns().Select(r => new CopyRange(r.Offset, r.Length));
}
