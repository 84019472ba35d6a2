namespace Strata.Block.Copy;

/// <summary>
/// The data half of a safe rebase: before an overlay is given another backing chain, every run it
/// does not allocate and where the old and the new chain read differently is copied into it from the
/// old chain, so that it reads the same afterwards. Changing the recorded backing file is the
/// caller's second step (<see cref="IBackingFileRecord"/>).
/// </summary>
public static class BackingDifferences
{
    /// <param name="overlay">The overlay, writable, with its old backing chain open below it.</param>
    /// <param name="newBacking">The new backing chain; null: none (it reads as zeroes).</param>
    /// <param name="percent">How much of the comparison is done, 0 to 100.</param>
    public static async Task CopyAsync(IBlockNode overlay, IBlockNode? newBacking, Action<double>? percent = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(overlay);
        var copy = new BlockCopy(ChainView.Whole(overlay.Backing), overlay, new BlockCopyOptions
        {
            CompareWith = ChainView.Whole(newBacking),
            CompareGranularity = Math.Max(1, overlay.Limits.PreferredAlignment),
        });
        var plan = await copy.PlanAsync(await UnallocatedAsync(overlay, cancellationToken), cancellationToken);
        await copy.RunAsync(plan, percent, cancellationToken);
    }

    /// <summary>The runs the layer itself does not allocate: there it reads what its backing chain reads.</summary>
    private static async ValueTask<List<CopyRange>> UnallocatedAsync(IBlockNode layer, CancellationToken cancellationToken)
    {
        var runs = new List<CopyRange>();
        for (long offset = 0; offset < layer.Size;)
        {
            var own = await layer.GetBlockStatusAsync(offset, layer.Size - offset, cancellationToken);
            if (!own.IsAllocated)
            {
                runs.Add(new CopyRange(own.Offset, own.Length));
            }

            offset = own.End;
        }

        return runs;
    }
}
