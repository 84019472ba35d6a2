namespace Strata.Block;

/// <summary>
/// A layer that can give up everything it allocates, so that it reads entirely from its backing
/// again: what an offline commit leaves of the top (qemu-img's bdrv_make_empty). Formats without
/// allocation (raw) do not implement it.
/// </summary>
public interface IEmptiableLayer
{
    /// <summary>Deallocates every extent of the layer, durably before it returns.</summary>
    ValueTask MakeEmptyAsync(CancellationToken cancellationToken = default);
}
