namespace Strata.Block.Bitmaps;

/// <summary>What <see cref="IBitmapStore.LoadAsync"/> found.</summary>
/// <param name="State">The state the store was in before loading (Active: a tracker died without saving).</param>
/// <param name="Recovered">True when the bits were rebuilt after a crash: a superset of the writes that reached the disk.</param>
/// <param name="Enabled">Whether the stored bitmap records writes (QEMU's AUTO flag; a dirty_bitmap file is always enabled).</param>
public readonly record struct BitmapLoadResult(BitmapStoreState State, bool Recovered, bool Enabled = true);
