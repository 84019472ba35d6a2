using Strata.Block;
using Strata.Block.Jobs;

namespace Strata.Daemon.Live;

/// <summary>A job (merge, backup) with the drive it works on, as query-jobs and the BLOCK_JOB_* events describe it.</summary>
public sealed record BlockJobEntry(Job Job, Drive Drive, long Speed, bool AutoDismiss);
