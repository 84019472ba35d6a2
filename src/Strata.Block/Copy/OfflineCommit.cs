namespace Strata.Block.Copy;

/// <summary>
/// Commit with no drive around it (<c>img commit</c>): what the layers above the base allocate is
/// copied into the base, the base is flushed, then the top is emptied so it reads entirely from its
/// backing again, unless the caller is about to delete it.
/// </summary>
/// <remarks>
/// The chain is open read-only; the base gets a writable open of its own for the copy (the caller's
/// <c>openWritable</c> knows how its driver reopens an image), closed before the top is emptied. The
/// base grows to the top's size first when it is smaller. A top that cannot be emptied is refused
/// before anything is written.
/// </remarks>
public static class OfflineCommit
{
    /// <param name="top">The top of the chain, open writable when <paramref name="emptyTop"/>.</param>
    /// <param name="baseNode">A layer below <paramref name="top"/> in its chain.</param>
    /// <param name="openWritable">Opens another, writable, node on the base's image.</param>
    /// <param name="emptyTop">Empty the top afterwards (qemu-img commit without -d).</param>
    /// <param name="percent">How much of the copy is done, 0 to 100.</param>
    public static async Task RunAsync(IBlockNode top, IBlockNode baseNode, Func<IBlockNode, CancellationToken, ValueTask<IBlockNode>> openWritable,
        bool emptyTop, Action<double>? percent = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(openWritable);
        var source = ChainView.Above(top, baseNode);
        var emptiable = top as IEmptiableLayer;
        if (emptyTop && emptiable is null)
        {
            throw BlockException.NotSupported($"'{top.FileName}' cannot be emptied: a {top.DriverName} image allocates nothing of its own to drop");
        }

        var target = await openWritable(baseNode, cancellationToken);
        await using (target)
        {
            if (target.Size < top.Size)
            {
                await target.ResizeAsync(top.Size, cancellationToken);
            }

            var copy = new BlockCopy(source, target, new BlockCopyOptions { DetectZeroes = true });
            await copy.CopyAllAsync(top.Size, percent, cancellationToken);
            await target.FlushAsync(cancellationToken);
        }

        if (emptiable is not null && emptyTop)
        {
            await emptiable.MakeEmptyAsync(cancellationToken);
            await top.FlushAsync(cancellationToken);
        }
    }
}
