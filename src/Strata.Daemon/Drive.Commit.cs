using Strata.Block;
using Strata.Block.Live;
using Strata.Formats;
using Strata.Formats.Qcow2;

namespace Strata.Daemon;

/// <summary>Live merge (block-commit) of a drive's layers into an image below them.</summary>
public sealed partial class Drive
{
    /// <summary>
    /// Prepares a merge of <paramref name="top"/> (and every layer between it and the base) into
    /// <paramref name="baseNode"/>: reopens the base read-write if it was opened read-only, and
    /// returns the job, not started. When the job commits, the drive reads from the base and the
    /// merged layers are closed; a parent above <paramref name="top"/> gets the base as its backing
    /// file (recorded in its header).
    /// </summary>
    public async Task<CommitJob> PrepareCommitAsync(string jobId, IBlockNode top, IBlockNode baseNode, CommitJobOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentNullException.ThrowIfNull(baseNode);
        ArgumentNullException.ThrowIfNull(options);
        if (CommitJob.DepthOf(top, baseNode) <= 0)
        {
            throw BlockException.Invalid($"'{baseNode.FileName}' is not below '{top.FileName}' in drive '{Id}'");
        }

        if (ReadOnly)
        {
            throw BlockException.ReadOnly($"drive '{Id}' is read-only");
        }

        var writableBase = await MakeWritableAsync(baseNode, cancellationToken);
        var parentOfTop = ParentOf(top);
        var parentOfBase = ParentOf(writableBase)!;
        return new CommitJob(jobId, Gate, top, writableBase, options with
        {
            OnCommit = async drain =>
            {
                if (parentOfTop is Qcow2Node parent)
                {
                    // A middle layer was merged: the layer above it now reads from the base, which
                    // is a frozen backing file again (docs/locking.md).
                    string? name = writableBase.FileName is { } f ? Path.GetFullPath(f) : null;
                    await parent.ChangeBackingFileAsync(name, writableBase.DriverName);
                    parent.AttachBacking(writableBase);
                    writableBase.SetPermissions(BackingPermissions, PermissionCheck.Conflicts);
                }

                // Close the merged layers, from the top down to just above the base, keeping the base.
                if (parentOfBase is Qcow2Node lowest)
                {
                    lowest.AttachBacking(null);
                }

                for (var node = top; node is not null && !ReferenceEquals(node, writableBase); node = node.Backing)
                {
                    Gate.StopFlushing(node);
                }

                await top.DisposeAsync();
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
    }

    /// <summary>What an image below the top holds: reads, and forbids other writers and resizers.</summary>
    private static NodePermissions BackingPermissions => NodePermissions.Writer.ForBacking();

    /// <summary>
    /// Returns a read-write node for <paramref name="node"/>'s image, holding it for writing (docs/locking.md):
    /// itself when it already is read-write, else a new read-write instance swapped into the chain
    /// under a drain (the read-only one is closed). Refused, with nothing changed, while another
    /// process uses the image in a way a writer forbids.
    /// </summary>
    private async Task<IBlockNode> MakeWritableAsync(IBlockNode node, CancellationToken cancellationToken)
    {
        if ((node.Capabilities & NodeCapabilities.ReadOnly) == 0)
        {
            node.SetPermissions(NodePermissions.Writer, PermissionCheck.Conflicts);
            return node;
        }

        if (node.FileName is not { } file)
        {
            throw BlockException.NotSupported("the base image has no file to reopen read-write");
        }

        var parent = ParentOf(node) as Qcow2Node
            ?? throw BlockException.NotSupported($"'{file}' cannot be reopened read-write here");

        // The new open takes over the locks of the old one, which holds the image until it is closed.
        var writable = await ImageOpener.ReopenWritableAsync(node, BackingPermissions, NodePermissions.Writer,
            new ImageOpenOptions { Direct = Spec.Direct }, cancellationToken);
        RequestGate.Drain drain;
        try
        {
            drain = await Gate.DrainAsync(cancellationToken);
        }
        catch
        {
            await writable.DisposeAsync();
            node.SetPermissions(BackingPermissions, PermissionCheck.Skip);
            throw;
        }

        using (drain)
        {
            if (writable is Qcow2Node q && node is Qcow2Node old)
            {
                q.AttachBacking(old.Backing);
                old.AttachBacking(null);
            }

            parent.AttachBacking(writable);
        }

        await node.DisposeAsync();
        return writable;
    }
}
