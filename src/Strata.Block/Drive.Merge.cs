using Strata.Block.Graph;
using Strata.Block.Jobs;
using Strata.Block.Live;

namespace Strata.Block;

/// <summary>Live merge (block-commit) of a drive's layers into an image below them.</summary>
public sealed partial class Drive
{
    // The merge job last prepared on this drive: one at a time.
    private CommitJob? _merge;

    /// <summary>True while a merge or a backup prepared on this drive has not concluded: no other graph change may start.</summary>
    public bool IsBusy => BusyWith is not null;

    /// <summary>The image a merge of <paramref name="top"/> goes into when none is named: the deepest of the chain, as in QEMU.</summary>
    public static IBlockNode DefaultMergeBase(IBlockNode top) => top.Layers().Last();

    /// <summary>
    /// Prepares a merge of <paramref name="top"/> (default: the drive's top) and every layer between it
    /// and the base into <paramref name="baseNode"/> (default: <see cref="DefaultMergeBase"/>): reopens
    /// the base read-write if it was opened read-only, and returns the job, not started. A merge of the
    /// top is active: it reports ready and waits for <see cref="Job.Complete"/> unless
    /// <see cref="CommitJobOptions.AutoComplete"/>; a merge of a lower layer completes on its own. When
    /// the job commits, the drive reads from the base and the merged layers are closed; a parent above
    /// <paramref name="top"/> gets the base as its backing file (recorded in its header). When it
    /// aborts, the drive stays on the top and the base is a frozen backing file again.
    /// </summary>
    public async Task<CommitJob> PrepareMergeAsync(string jobId, IBlockNode? top, IBlockNode? baseNode, CommitJobOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        top ??= Top;
        baseNode ??= DefaultMergeBase(top);
        if (ReferenceEquals(top, baseNode))
        {
            throw BlockException.Invalid($"'{top.FileName}' in drive '{Id}' has no backing file to merge into");
        }

        if (top.DepthOf(baseNode) <= 0 || Top.DepthOf(top) < 0)
        {
            throw BlockException.Invalid($"'{baseNode.FileName}' is not below '{top.FileName}' in drive '{Id}'");
        }

        if (ReadOnly)
        {
            throw BlockException.ReadOnly($"drive '{Id}' is read-only");
        }

        ThrowIfBusy();
        ThrowIfViewed(baseNode, "a merge into or through it");
        bool active = ReferenceEquals(top, Root);
        var writableBase = await ReopenLayerAsync(baseNode, readOnly: false, cancellationToken);
        var parentOfTop = ParentOf(top);
        var job = new CommitJob(jobId, Gate, top, writableBase, options with
        {
            AutoComplete = options.AutoComplete || !active,
            OnCommit = async drain =>
            {
                await DropMergedAsync(top, writableBase, parentOfTop, drain);
                if (options.OnCommit is { } more)
                {
                    await more(drain);
                }
            },
            OnAbort = async drain =>
            {
                // The drive stays on the top: the base is a frozen backing file again.
                writableBase.SetPermissions(BackingPermissions, PermissionCheck.Conflicts);
                if (options.OnAbort is { } more)
                {
                    await more(drain);
                }
            },
        });
        _merge = job;
        return job;
    }

    /// <summary>What an image below the top holds: reads, and forbids other writers and resizers.</summary>
    private static NodePermissions BackingPermissions => NodePermissions.Writer.ForBacking();

    /// <summary>
    /// The commit of a merge, under its drain, once the drive reads from the base: the layer above the
    /// merged ones (if any) records the base as its backing file and its edge points there; the merged
    /// layers, from the top down to just above the base, are closed.
    /// </summary>
    private async Task DropMergedAsync(IBlockNode top, IBlockNode writableBase, IBlockNode? parentOfTop, RequestGate.Drain drain)
    {
        if (parentOfTop is not null)
        {
            // A middle layer was merged: the layer above it now reads from the base, which is a
            // frozen backing file again (docs/locking.md).
            if (parentOfTop is not IBackedLayer parent)
            {
                throw BlockException.NotSupported($"'{parentOfTop.FileName}' cannot be re-pointed to another backing image");
            }

            if (parentOfTop is IBackingFileRecord record)
            {
                string? name = writableBase.FileName is { } f ? _opener.FullName(f) : null;
                await record.ChangeBackingFileAsync(name, writableBase.DriverName);
            }

            parent.BackingEdge.Repoint(writableBase, drain);
            writableBase.SetPermissions(BackingPermissions, PermissionCheck.Conflicts);
        }

        var merged = top.Layers().TakeWhile(n => !ReferenceEquals(n, writableBase)).ToList();
        await RehomeMergedBitmapsAsync(merged, writableBase, drain);
        foreach (var node in merged)
        {
            Gate.StopFlushing(node);
        }

        await _chain.CloseAsync(merged);
    }

    private void ThrowIfBusy()
    {
        if (BusyWith is { } job)
        {
            throw BlockException.Invalid($"drive '{Id}' is busy: {(job == _merge ? "merge" : job.Type)} job '{job.Id}' is running on it");
        }
    }
}
