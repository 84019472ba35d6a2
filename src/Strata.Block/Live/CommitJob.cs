using Strata.Block.Copy;
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
        _baseDepth = top.DepthOf(baseNode);
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

        // A few copiers share the chunks: while one waits for a read another writes, and both
        // cores work on a merge of many small extents.
        var copy = new BlockCopy(new ChainView(_top, _baseDepth), _base, new BlockCopyOptions
        {
            ChunkSize = _options.ChunkSize,
            Parallelism = _options.Copiers,
            Speed = _options.Speed,
            ZeroFlags = ZeroFlags.MayUnmap,
            Copied = AddProgress,
            Step = CopyChunkRetryingAsync,
        });
        var plan = await FindWorkAsync(copy, cancellationToken);
        await copy.RunAsync(plan, cancellationToken: cancellationToken);
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

    /// <summary>What the layers above the base hold, under the job's error policy (a failed scan starts again once resumed).</summary>
    private ValueTask<CopyPlan> FindWorkAsync(BlockCopy copy, CancellationToken cancellationToken) => RunStepAsync(async () =>
    {
        // The plan keeps what a layer above the base allocates: the base is never asked.
        var plan = await copy.PlanAllAsync(_top.Size, cancellationToken);
        AddTotal(plan.TotalBytes);
        return plan;
    }, failedWriting: () => false, _options.OnError, cancellationToken);

    /// <summary>One chunk, under the job's error policy: a failed read or write fails the job or stops it until resumed.</summary>
    private async ValueTask CopyChunkRetryingAsync(CopyChunk chunk, CancellationToken cancellationToken)
    {
        await PausePointAsync(cancellationToken);
        await RunStepAsync(async () =>
        {
            // The copy looks at the chunk again under the lock: the guest may have written here since
            // the plan was made, and what the layers above the base show now is what the base must hold.
            using var held = await _locks.AcquireExclusiveAsync(chunk.Range.Offset, chunk.Range.Length, cancellationToken);
            await chunk.CopyAsync(cancellationToken);
            return true;
        }, () => chunk.IsWriting, _options.OnError, cancellationToken);
    }
}
