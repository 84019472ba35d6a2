namespace Strata.Block.Live;

public sealed record CommitJobOptions
{
    /// <summary>Finish as soon as the copy is done, without waiting for job-complete (the console's merge_disk).</summary>
    public bool AutoComplete { get; init; }

    /// <summary>Copy rate limit in bytes per second; 0 means unlimited (QMP "speed").</summary>
    public long Speed { get; init; }

    /// <summary>What a failed read or write of the copy does (QMP "on-error"; default: fail the job).</summary>
    public IoErrorPolicy OnError { get; init; }

    /// <summary>How many chunks are copied at once when no speed limit is set.</summary>
    public int Copiers { get; init; } = 4;

    /// <summary>Bytes copied per step; a step holds the range lock of its chunk.</summary>
    public int ChunkSize { get; init; } = 1 << 20;

    /// <summary>
    /// Runs under the drain after a successful copy, once the drive reads from the base (for an
    /// active merge the gate's root is already the base): close the merged layers, rewrite a
    /// parent's backing file name, and so on. Throwing aborts the merge.
    /// </summary>
    public Func<RequestGate.Drain, Task>? OnCommit { get; init; }

    /// <summary>Runs under the drain after a failed or cancelled merge, once the drive is back on the top.</summary>
    public Func<RequestGate.Drain, Task>? OnAbort { get; init; }
}
