using System.Buffers;
using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Strata.Block.Copy;

/// <summary>
/// The engine's one copy loop: copies what a <see cref="ChainView"/> reads into a target node, extent
/// by extent. <c>img convert</c>, <c>img commit</c>, <c>img rebase</c> and the live merge all copy
/// through it; a backup copies a bitmap's dirty extents the same way.
/// </summary>
/// <remarks>
/// A copy is planned, then run. The plan walks block status once over the ranges asked for and keeps
/// only the extents that need a write: a run that reads as zeroes over a target that already does,
/// and a run that no layer of a bounded view allocates (it lies at or below a commit's base), are
/// never visited. The run cuts the plan into chunks that a few workers take in disk order. Each chunk
/// looks at block status again when it is copied, so a source that changed since the plan (the top of
/// a live merge, whose step holds the chunk's range lock) is copied as it reads then. Zero runs become
/// write-zeroes; a data run is read and written in one request per run, as zeroes when
/// <see cref="BlockCopyOptions.DetectZeroes"/> finds it reads so. The first failure stops every worker.
/// An <see cref="BlockCopyOptions.Observer"/> hears each run once the target holds it, from the
/// buffer that was written; without one the copy does no extra work.
/// </remarks>
public sealed class BlockCopy
{
    private readonly ChainView _source;
    private readonly IBlockNode _target;
    private readonly BlockCopyOptions _options;
    private readonly int _chunkSize;

    public BlockCopy(ChainView source, IBlockNode target, BlockCopyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        _source = source;
        _target = target;
        _options = options ?? new BlockCopyOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(_options.ChunkSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(_options.CompareGranularity);
        if (_options.Alignment <= 0 || !int.IsPow2(_options.Alignment))
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.Alignment, "the alignment is a power of two");
        }

        if (_options.Observer is not null && _options.CompareWith is not null)
        {
            throw new ArgumentException("an observer hears whole runs, a comparing copy writes only differences", nameof(options));
        }

        _chunkSize = Math.Min(_options.ChunkSize, Math.Min(source.MaxTransfer, target.Limits.MaxTransfer));
        _chunkSize = Math.Max(_options.Alignment, _chunkSize / _options.Alignment * _options.Alignment);
    }

    /// <summary>The most bytes one chunk covers (a multiple of <see cref="BlockCopyOptions.Alignment"/>).</summary>
    public int ChunkSize => _chunkSize;

    /// <summary>
    /// A chunk of <paramref name="range"/> outside any run, copied through <paramref name="buffer"/>
    /// (at least the range's length) when its <see cref="CopyChunk.CopyAsync"/> is called: a backup's
    /// copy-before-write takes the old data of a guest write's clusters this way.
    /// </summary>
    public CopyChunk ChunkOf(CopyRange range, Memory<byte> buffer)
    {
        if (range.Length <= 0 || range.Length > buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(range), range, "a chunk is not empty and fits its buffer");
        }

        return new CopyChunk(this, range, buffer[..(int)range.Length], Memory<byte>.Empty);
    }

    /// <summary>Plans a copy of every byte of [0, <paramref name="length"/>) that needs a write.</summary>
    public ValueTask<CopyPlan> PlanAllAsync(long length, CancellationToken cancellationToken = default) =>
        PlanAsync([new CopyRange(0, length)], cancellationToken);

    /// <summary>Plans a copy of the bytes of <paramref name="ranges"/> (in disk order, not overlapping) that need a write.</summary>
    public async ValueTask<CopyPlan> PlanAsync(IEnumerable<CopyRange> ranges, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        var extents = new List<CopyRange>();
        var zeroesLeftOut = new List<CopyRange>();
        long limit = 0;
        void Add(long offset, long length)
        {
            long alignment = _options.Alignment;
            long end = Math.Min(limit, (offset + length + alignment - 1) / alignment * alignment);
            offset = offset / alignment * alignment;
            if (extents.Count > 0 && extents[^1].End >= offset)
            {
                extents[^1] = extents[^1] with { Length = Math.Max(extents[^1].End, end) - extents[^1].Offset };
            }
            else
            {
                extents.Add(new CopyRange(offset, end - offset));
            }
        }

        foreach (var range in ranges)
        {
            if (range.Length <= 0)
            {
                continue;
            }

            limit = range.End;

            if (_options.CompareWith is not null)
            {
                Add(range.Offset, range.Length);
                continue;
            }

            await foreach (var extent in _source.EnumerateAsync(range.Offset, range.Length, cancellationToken))
            {
                if (NeedsWrite(extent))
                {
                    Add(extent.Offset, extent.Length);
                }
                else if (_options.Observer is not null && Owns(extent))
                {
                    zeroesLeftOut.Add(new CopyRange(extent.Offset, extent.Length));
                }
            }
        }

        return new CopyPlan(extents, zeroesLeftOut);
    }

    /// <summary>Plans and runs a copy of [0, <paramref name="length"/>).</summary>
    public async Task CopyAllAsync(long length, Action<double>? percent = null, CancellationToken cancellationToken = default) =>
        await RunAsync(await PlanAllAsync(length, cancellationToken), percent, cancellationToken);

    /// <summary>
    /// Copies the extents of <paramref name="plan"/>; <paramref name="percent"/> hears how much of the
    /// plan is done (0 to 100; calls never overlap). Throws the first failure of any worker, or
    /// <see cref="OperationCanceledException"/> when cancelled.
    /// </summary>
    public async Task RunAsync(CopyPlan plan, Action<double>? percent = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var chunks = plan.Chunks(_chunkSize);
        if (_options.Observer is { } observer)
        {
            foreach (var zeroes in plan.ZeroesLeftOut)
            {
                observer.Zeroes(zeroes.Offset, zeroes.Length);
            }
        }

        var step = _options.Step ?? ((chunk, token) => chunk.CopyAsync(token));
        var clock = Stopwatch.StartNew();
        int next = -1;
        Exception? failure = null;

        // Protects copied and serializes the progress callbacks of the workers.
        var progressLock = new Lock();
        long copied = 0;
        long Report(int bytes)
        {
            lock (progressLock)
            {
                copied += bytes;
                _options.Copied?.Invoke(bytes);
                percent?.Invoke(copied * 100.0 / plan.TotalBytes);
                return copied;
            }
        }

        using var stopAll = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        async Task WorkerAsync()
        {
            byte[] buffer = ArrayPool<byte>.Shared.Rent(_chunkSize);
            byte[]? reference = _options.CompareWith is null ? null : ArrayPool<byte>.Shared.Rent(_chunkSize);
            try
            {
                for (int i = Interlocked.Increment(ref next); i < chunks.Count; i = Interlocked.Increment(ref next))
                {
                    // The caller's token first: a linked token hears of a cancel only when its callback
                    // runs, which CancelAsync leaves to the thread pool, and fast chunks outrun it.
                    cancellationToken.ThrowIfCancellationRequested();
                    stopAll.Token.ThrowIfCancellationRequested();
                    var range = chunks[i];
                    int length = (int)range.Length;
                    await step(new CopyChunk(this, range, buffer.AsMemory(0, length), reference.AsMemory(0, reference is null ? 0 : length)), stopAll.Token);
                    await ThrottleAsync(Report(length), clock, stopAll.Token);
                }
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // The first failure ends the copy; the other workers stop at their next request.
                Interlocked.CompareExchange(ref failure, e, null);
                await stopAll.CancelAsync();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
                if (reference is not null)
                {
                    ArrayPool<byte>.Shared.Return(reference);
                }
            }
        }

        int workers = Math.Min(chunks.Count, _options.Speed > 0 ? 1 : Math.Max(1, _options.Parallelism));
        await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(WorkerAsync, CancellationToken.None)));
        cancellationToken.ThrowIfCancellationRequested();
        if (failure is not null)
        {
            ExceptionDispatchInfo.Throw(failure);
        }

        if (plan.TotalBytes == 0)
        {
            percent?.Invoke(100);
        }
    }

    /// <summary>One chunk, as the source reads now: see <see cref="CopyChunk.CopyAsync"/>.</summary>
    internal async ValueTask CopyChunkAsync(CopyChunk chunk, Memory<byte> buffer, Memory<byte> reference, CancellationToken cancellationToken)
    {
        var range = chunk.Range;
        if (_options.CompareWith is { } compareWith)
        {
            await CopyDifferencesAsync(chunk, compareWith, buffer, reference, cancellationToken);
            return;
        }

        for (long at = range.Offset; at < range.End;)
        {
            var extent = await _source.GetStatusAsync(at, range.End - at, cancellationToken);
            if (NeedsWrite(extent))
            {
                if (extent.IsZero)
                {
                    chunk.IsWriting = true;
                    await _target.WriteZeroesAsync(at, extent.Length, _options.ZeroFlags, cancellationToken);
                    _options.Observer?.Zeroes(at, extent.Length);
                }
                else
                {
                    await CopyDataAsync(chunk, at, buffer[..(int)extent.Length], cancellationToken);
                }
            }
            else if (Owns(extent))
            {
                // Zeroes over a target that reads as zeroes already.
                _options.Observer?.Zeroes(at, extent.Length);
            }

            at = extent.End;
        }
    }

    /// <summary>True when the run must be written: it is the view's to copy and the target does not read so already.</summary>
    private bool NeedsWrite(ChainExtent extent) => Owns(extent) && !(extent.IsZero && _options.TargetIsZero);

    /// <summary>True when the run is the view's to copy: a bounded view leaves what its layers do not allocate alone.</summary>
    private bool Owns(ChainExtent extent) => extent.IsPresent || _source.IsWholeChain;

    private async ValueTask CopyDataAsync(CopyChunk chunk, long offset, Memory<byte> data, CancellationToken cancellationToken)
    {
        await _source.ReadAsync(offset, data, cancellationToken);
        bool zero = _options.DetectZeroes && !data.Span.ContainsAnyExcept((byte)0);
        if (zero && _options.TargetIsZero)
        {
            _options.Observer?.Zeroes(offset, data.Length);
            return;
        }

        chunk.IsWriting = true;
        if (zero)
        {
            await _target.WriteZeroesAsync(offset, data.Length, _options.ZeroFlags, cancellationToken);
            _options.Observer?.Zeroes(offset, data.Length);
        }
        else
        {
            await _target.WriteAsync(offset, data, WriteFlags.None, cancellationToken);
            _options.Observer?.Data(offset, data.Span);
        }
    }

    /// <summary>Writes the pieces of the chunk where the source and <paramref name="compareWith"/> read differently, runs of them at once.</summary>
    private async ValueTask CopyDifferencesAsync(CopyChunk chunk, ChainView compareWith, Memory<byte> buffer, Memory<byte> reference,
        CancellationToken cancellationToken)
    {
        var range = chunk.Range;
        await _source.ReadAsync(range.Offset, buffer, cancellationToken);
        await compareWith.ReadAsync(range.Offset, reference, cancellationToken);
        int granule = _options.CompareGranularity;
        int runStart = -1;
        for (int at = 0; at <= buffer.Length; at += granule)
        {
            int n = Math.Min(granule, buffer.Length - at);
            bool differs = n > 0 && !buffer.Span.Slice(at, n).SequenceEqual(reference.Span.Slice(at, n));
            if (differs && runStart < 0)
            {
                runStart = at;
            }
            else if (!differs && runStart >= 0)
            {
                chunk.IsWriting = true;
                await _target.WriteAsync(range.Offset + runStart, buffer[runStart..at], WriteFlags.None, cancellationToken);
                runStart = -1;
            }
        }

        if (runStart >= 0)
        {
            chunk.IsWriting = true;
            await _target.WriteAsync(range.Offset + runStart, buffer[runStart..], WriteFlags.None, cancellationToken);
        }
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
