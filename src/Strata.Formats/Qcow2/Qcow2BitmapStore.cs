using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Formats.Qcow2;

/// <summary>
/// One persistent bitmap inside a qcow2 image, with QEMU's semantics (block/qcow2-bitmap.c):
/// tracking sets in_use on disk and saving clears it; a bitmap found in use at load is
/// <see cref="BitmapStoreState.Inconsistent"/>. Nothing is recovered after a crash, so
/// <see cref="BeforeWriteAsync"/> does nothing. Every call goes through the node's metadata path.
/// </summary>
/// <remarks>
/// Frozen and Consistent are the same on disk (in_use clear). A store that loaded an enabled
/// bitmap takes over its tracking from the node (see <see cref="Qcow2Node"/>'s bitmap remarks).
/// </remarks>
internal sealed class Qcow2BitmapStore(Qcow2Node node, string name, long granularity, long diskSize) : IBitmapStore
{
    public string Description => $"{node.FileName}, bitmap '{name}'";

    public long Granularity => granularity;

    public long DiskSize => diskSize;

    public ValueTask<BitmapLoadResult> LoadAsync(DirtyBitmap into, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(into);
        return node.LoadBitmapAsync(name, into, cancellationToken);
    }

    public ValueTask BeginTrackingAsync(CancellationToken cancellationToken = default) => node.BeginBitmapTrackingAsync(name, cancellationToken);

    public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask SaveAsync(DirtyBitmap bits, BitmapStoreState state, CancellationToken cancellationToken = default)
        => Save(bits, state, enabled: null, cancellationToken);

    public ValueTask SaveAsync(DirtyBitmap bits, BitmapStoreState state, bool enabled, CancellationToken cancellationToken = default)
        => Save(bits, state, enabled, cancellationToken);

    public ValueTask SetEnabledAsync(bool enabled, CancellationToken cancellationToken = default) => node.SetBitmapEnabledAsync(name, enabled, cancellationToken);

    public ValueTask CheckpointAsync(DirtyBitmap bits, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(bits);
        return node.SaveBitmapAsync(name, bits, inUse: true, enabled: null, cancellationToken);
    }

    public ValueTask RemoveAsync(CancellationToken cancellationToken = default) => node.RemoveBitmapAsync(name, cancellationToken);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private ValueTask Save(DirtyBitmap bits, BitmapStoreState state, bool? enabled, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(bits);
        if (state is not (BitmapStoreState.Consistent or BitmapStoreState.Frozen))
        {
            throw BlockException.Invalid($"{Description}: a bitmap is saved Consistent or Frozen, not {state}");
        }

        return node.SaveBitmapAsync(name, bits, inUse: false, enabled, cancellationToken);
    }
}
