using Strata.Block;
using Strata.Block.Live;

namespace Strata.Daemon.Live;

/// <summary>A merge job with the drive it works on, as query-jobs and the BLOCK_JOB_* events describe it.</summary>
public sealed record BlockJobEntry(CommitJob Job, Drive Drive, long Speed, bool AutoDismiss);
