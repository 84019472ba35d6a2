using System.Buffers;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Strata.Block.Jobs;

namespace Strata.Block.Live;

/// <summary>
/// Merges the layers from <c>top</c> down to (not including) <c>base</c> into <c>base</c> while the
/// drive stays live, then makes the drive read from <c>base</c> (QEMU's block-commit).
/// </summary>
/// <remarks>
/// When <c>top</c> is the drive's root (an active merge) guest writes keep landing in it, so a
/// <see cref="MirrorNode"/> is installed first, under a drain: from then on every guest write also
/// reaches the base. The copy then only has to cover what the upper layers held when the mirror went
/// in — a fixed amount, so the merge converges however fast the guest writes. Progress counts those
/// bytes truthfully. A failure or a cancel removes the mirror and leaves the drive on the top: the
/// chain above the base still reads exactly as before (the base only received data that the upper
/// layers shadow), so nothing is lost.
/// </remarks>
public sealed class CommitJob : Job
{
    private readonly RequestGate _gate;
    private readonly IBlockNode _top;
    private readonly IBlockNode _base;
    private readonly CommitJobOptions _options;
    private readonly RangeLock _locks = new();

    // How many backing links lead from the top to the base; the chain between them does not change while the job runs.
    private readonly int _baseDepth;
    private MirrorNode? _mirror;

    public CommitJob(string id, RequestGate gate, IBlockNode top, IBlockNode baseNode, CommitJobOptions? options = null)
        : base(id, "commit")
    {
        ArgumentNullException.ThrowIfNull(gate);
        ArgumentNullException.ThrowIfNull(top);
        ArgumentNullException.ThrowIfNull(baseNode);
        _gate = gate;
        _top = top;
        _base = baseNode;
        _options = options ?? new CommitJobOptions();
        _baseDepth = DepthOf(top, baseNode);
        if (_baseDepth <= 0)
        {
            throw BlockException.Invalid("the base is not below the top in the backing chain");
        }

        if ((baseNode.Capabilities & NodeCapabilities.ReadOnly) != 0)
        {
            throw BlockException.ReadOnly($"the base '{baseNode.FileName}' is open read-only");
        }
    }

    /// <summary>True when the top is the drive's root and guest writes must be mirrored.</summary>
    public bool IsActive => ReferenceEquals(_gate.Root, _top) || ReferenceEquals(_mirror?.Overlay, _top);

    protected override async Task RunAsync(CancellationToken cancellationToken)
    {
        if (_base.Size < _top.Size)
        {
            await _base.ResizeAsync(_top.Size, cancellationToken);
        }

        if (ReferenceEquals(_gate.Root, _top))
        {
            using var drain = await _gate.DrainAsync(cancellationToken);
            _mirror = new MirrorNode(_top, _base, _locks);
            _gate.ReplaceRoot(_mirror, drain);
        }

        var work = await FindWorkAsync(cancellationToken);

        // The chunks, in disk order, shared by a few copiers: while one waits for a read another
        // writes, and both cores work on a merge of many small extents.
        var chunks = new List<(long Offset, int Length)>();
        foreach (var extent in work)
        {
            for (long offset = extent.Offset; offset < extent.End; offset += _options.ChunkSize)
            {
                chunks.Add((offset, (int)Math.Min(_options.ChunkSize, extent.End - offset)));
            }
        }

        var clock = Stopwatch.StartNew();
        int next = -1;
        long copied = 0;
        Exception? failure = null;
        using var stopAll = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        async Task CopierAsync()
        {
            var buffer = ArrayPool<byte>.Shared.Rent(_options.ChunkSize);
            try
            {
                for (int i = Interlocked.Increment(ref next); i < chunks.Count; i = Interlocked.Increment(ref next))
                {
                    await PausePointAsync(stopAll.Token);
                    var (offset, length) = chunks[i];
                    await CopyChunkRetryingAsync(offset, length, buffer.AsMemory(0, length), stopAll.Token);
                    AddProgress(length);
                    await ThrottleAsync(Interlocked.Add(ref copied, length), clock, stopAll.Token);
                }
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // The first failure ends the merge; the other copiers stop at their next step.
                Interlocked.CompareExchange(ref failure, e, null);
                await stopAll.CancelAsync();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        int copiers = _options.Speed > 0 ? 1 : Math.Max(1, _options.Copiers);
        await Task.WhenAll(Enumerable.Range(0, copiers).Select(_ => Task.Run(CopierAsync, CancellationToken.None)));
        cancellationToken.ThrowIfCancellationRequested();
        if (failure is not null)
        {
            ExceptionDispatchInfo.Throw(failure);
        }

        await _base.FlushAsync(cancellationToken);
        if (IsActive && !_options.AutoComplete)
        {
            await ReadyAndWaitForCompleteAsync(cancellationToken);
        }
    }

    protected override async Task CommitAsync()
    {
        using var drain = await _gate.DrainAsync();
        await _base.FlushAsync();
        if (_mirror is not null)
        {
            _gate.ReplaceRoot(_base, drain);
            _mirror = null;
        }

        if (_options.OnCommit is { } onCommit)
        {
            await onCommit(drain);
        }
    }

    protected override async Task AbortAsync()
    {
        using var drain = await _gate.DrainAsync();
        if (_mirror is not null)
        {
            _gate.ReplaceRoot(_top, drain);
            _mirror = null;
        }

        // The base took copies and mirrored guest writes that nothing flushes any more: the drive's
        // next flush (or its close) does, so a stop right after a cancel leaves it on stable storage.
        _gate.FlushAlso(_base, drain);

        if (_options.OnAbort is { } onAbort)
        {
            await onAbort(drain);
        }
    }

    /// <summary>How many backing links lead from <paramref name="top"/> to <paramref name="target"/> (-1: not below).</summary>
    public static int DepthOf(IBlockNode top, IBlockNode target) => top.DepthOf(target);

    /// <summary>What the layers above the base hold, under the job's error policy (a failed scan starts again once resumed).</summary>
    private ValueTask<List<ChainExtent>> FindWorkAsync(CancellationToken cancellationToken) => RunStepAsync(async () =>
    {
        var work = new List<ChainExtent>();
        await foreach (var e in ChainStatus.EnumerateAboveAsync(_top, _baseDepth, 0, _top.Size, cancellationToken))
        {
            // Present here means allocated in a layer above the base: the base is never asked.
            if (e.IsPresent)
            {
                work.Add(e);
            }
        }

        AddTotal(work.Sum(e => e.Length));
        return work;
    }, failedWriting: () => false, _options.OnError, cancellationToken);

    /// <summary>One chunk, under the job's error policy: a failed read or write fails the job or stops it until resumed.</summary>
    private async ValueTask CopyChunkRetryingAsync(long offset, int length, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        bool writing = false;
        await RunStepAsync(async () =>
        {
            writing = false;
            using var held = await _locks.AcquireExclusiveAsync(offset, length, cancellationToken);

            // Look again under the lock: the guest may have written here since the list was made, and
            // what the layers above the base show now is what the base must hold.
            var status = await ChainStatus.GetAboveAsync(_top, _baseDepth, offset, length, cancellationToken);
            if (status.Length == length && status.IsPresent && status.IsZero && !status.IsData)
            {
                writing = true;
                await _base.WriteZeroesAsync(offset, length, ZeroFlags.MayUnmap, cancellationToken);
                return true;
            }

            await _top.ReadAsync(offset, buffer, cancellationToken);
            writing = true;
            await _base.WriteAsync(offset, buffer, WriteFlags.None, cancellationToken);
            return true;
        }, () => writing, _options.OnError, cancellationToken);
    }

    private async ValueTask ThrottleAsync(long copied, Stopwatch clock, CancellationToken cancellationToken)
    {
        if (_options.Speed <= 0)
        {
            return;
        }

        var due = TimeSpan.FromSeconds((double)copied / _options.Speed);
        if (due > clock.Elapsed)
        {
            await Task.Delay(due - clock.Elapsed, cancellationToken);
        }
    }
}
