namespace Strata.Block.Copy;

/// <summary>How a <see cref="BlockCopy"/> copies; the defaults are those of an offline copy into an existing image.</summary>
public sealed record BlockCopyOptions
{
    /// <summary>Large enough to keep a disk streaming, small enough to stay out of the large-object heap churn.</summary>
    public const int DefaultChunkSize = 4 * 1024 * 1024;

    /// <summary>Bytes copied per step (at most); a live job locks one chunk at a time.</summary>
    public int ChunkSize { get; init; } = DefaultChunkSize;

    /// <summary>How many chunks are copied at once: while one worker waits for a read another writes.</summary>
    public int Parallelism { get; init; } = 2;

    /// <summary>Copy rate limit in bytes per second; 0: unlimited. A limited copy runs one chunk at a time.</summary>
    public long Speed { get; init; }

    /// <summary>The target reads as zeroes already (freshly created): zero runs need no write.</summary>
    public bool TargetIsZero { get; init; }

    /// <summary>Look into data runs too: a chunk that reads as zeroes is written as zeroes (or not at all).</summary>
    public bool DetectZeroes { get; init; }

    /// <summary>
    /// The plan rounds each extent out to multiples of this many bytes (never past the end of the
    /// range it came from), and chunks are cut at multiples of it: a backup copies whole clusters of
    /// its copy bitmap. A power of two; 1: no rounding.
    /// </summary>
    public int Alignment { get; init; } = 1;

    /// <summary>How zero runs are written to the target.</summary>
    public ZeroFlags ZeroFlags { get; init; }

    /// <summary>
    /// When set, the copy writes only where the source reads differently from this chain, compared
    /// in pieces of <see cref="CompareGranularity"/> bytes (a rebase keeps what the old backing chain
    /// read where the new one differs). Every byte of the ranges is read: block status is not used.
    /// </summary>
    public ChainView? CompareWith { get; init; }

    /// <summary>The piece <see cref="CompareWith"/> compares and writes at a time (the target's cluster).</summary>
    public int CompareGranularity { get; init; } = 64 * 1024;

    /// <summary>Called with the bytes of each chunk once it is copied; calls never overlap.</summary>
    public Action<long>? Copied { get; init; }

    /// <summary>
    /// Runs each chunk, in place of a plain <c>chunk.CopyAsync</c>: a live job takes its pause point,
    /// the chunk's range lock and its error policy here. Steps of several workers run at once.
    /// </summary>
    public Func<CopyChunk, CancellationToken, ValueTask>? Step { get; init; }

    /// <summary>
    /// Hears each run the copy leaves the target reading, with its bytes (<see cref="ICopyObserver"/>,
    /// which says when and from which threads); null: nobody listens, and the copy costs what it did.
    /// Not with <see cref="CompareWith"/>, whose writes cover only the differences.
    /// </summary>
    public ICopyObserver? Observer { get; init; }
}
