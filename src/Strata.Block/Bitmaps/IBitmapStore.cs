namespace Strata.Block.Bitmaps;

/// <summary>
/// Where a persistent dirty bitmap lives between runs: a dirty_bitmap file
/// (docs/formats/dirty-bitmap.md), or a bitmap inside a qcow2 image (qcow2.txt, "Bitmaps extension").
/// The drive's bitmap holds the bits in memory (<see cref="DirtyBitmap"/>) and calls its store at
/// the points below; the store never sees a bit change between them.
/// </summary>
/// <remarks>
/// Order of calls, from the drive (the store may rely on it):
/// <list type="number">
/// <item><see cref="LoadAsync"/> once, before anything else.</item>
/// <item><see cref="BeginTrackingAsync(CancellationToken)"/> when the bitmap starts recording writes
/// (<see cref="BeginTrackingAsync(QuietImage, CancellationToken)"/> when the drive has served no
/// request yet). From its return on, a crash must leave the store recognisably Active (never
/// Consistent with missing bits).</item>
/// <item>While tracking: <see cref="BeforeWriteAsync"/> before each guest write, write-zeroes and
/// discard reaches any layer of the drive, then the write, then the bit is set in memory.
/// Concurrent calls are allowed. After it returns the store must be able to recover, after a
/// crash, a bitmap that includes the range (crash-safe stores make an intent durable here; stores
/// with QEMU's semantics return at once and recover nothing: their crashed bitmap is Inconsistent).
/// Most calls must complete synchronously: this is on every write's path.</item>
/// <item><see cref="SaveAsync(DirtyBitmap, BitmapStoreState, CancellationToken)"/> when tracking stops (disabled, handed off at a snapshot, removed, the
/// drive closes; at a close after the drive's last flush <see cref="SaveAtCloseAsync"/> instead): no write is in flight (the drive holds a drain or tracking has ended), the bits
/// passed are final, and after it returns the stored copy is complete and durable, in the given state.
/// Tracking may begin again later with <see cref="BeginTrackingAsync(CancellationToken)"/>.</item>
/// <item><see cref="CheckpointAsync"/>, optionally, while tracking under a drain: write the bits,
/// stay Active, and forget intents the written bits now cover.</item>
/// <item><see cref="SetEnabledAsync"/>, at any time after loading, when the user enables or
/// disables the bitmap: whether it records writes when next opened.</item>
/// <item><see cref="ClearedAsync"/>, at any time after loading, before the bits are cleared: a store
/// that keeps a tracking lineage begins a new one, durably, since the bits stop holding every write
/// since the old one began.</item>
/// <item><see cref="RemoveAsync"/> when the user removes the bitmap for good; then dispose.</item>
/// </list>
/// Errors are <see cref="BlockException"/> or <see cref="IOException"/> with one clear line.
/// </remarks>
public interface IBitmapStore : IAsyncDisposable
{
    /// <summary>How messages name it: "t0.dbmp", "foo.qcow2, bitmap 'b0'".</summary>
    string Description { get; }

    /// <summary>The granularity the stored bitmap was made with.</summary>
    long Granularity { get; }

    /// <summary>The disk size the stored bitmap covers.</summary>
    long DiskSize { get; }

    /// <summary>
    /// Reads the stored bits into <paramref name="into"/> (same granularity and size). A store left
    /// Active by a tracker that died is recovered here when it can be (a superset), and reported as
    /// Inconsistent when it cannot.
    /// </summary>
    ValueTask<BitmapLoadResult> LoadAsync(DirtyBitmap into, CancellationToken cancellationToken = default);

    /// <summary>Marks the stored copy Active, durably, before the first write is tracked.</summary>
    ValueTask BeginTrackingAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="BeginTrackingAsync(CancellationToken)"/>; <paramref name="quiet"/>, when given,
    /// vouches that the drive has served no request since it opened those files, so a store that
    /// recorded them unchanged at its last close (or that a crash left Active) may carry its tracking
    /// lineage on (docs/bitmaps.md, "Persistence"). Stores without lineages ignore it.
    /// </summary>
    ValueTask BeginTrackingAsync(QuietImage? quiet, CancellationToken cancellationToken = default) => BeginTrackingAsync(cancellationToken);

    /// <summary>Makes durable what crash recovery needs to include <c>[offset, offset + length)</c>; usually completes at once.</summary>
    ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken = default);

    /// <summary>Writes the final bits and the state (Frozen or Consistent), durably.</summary>
    ValueTask SaveAsync(DirtyBitmap bits, BitmapStoreState state, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="SaveAsync(DirtyBitmap, BitmapStoreState, CancellationToken)"/>, also recording
    /// whether the bitmap records writes when its image is next used (qcow2's "auto" flag; QEMU's
    /// enabled state). Stores that are always enabled (dirty_bitmap files) ignore it.
    /// </summary>
    ValueTask SaveAsync(DirtyBitmap bits, BitmapStoreState state, bool enabled, CancellationToken cancellationToken = default)
        => SaveAsync(bits, state, cancellationToken);

    /// <summary>
    /// The save of a drive's close (Consistent), after its last flush: <paramref name="quiet"/> names
    /// the image files as they are now, which a store with lineages records so the next start can
    /// check nothing wrote them in between. Other stores save as usual.
    /// </summary>
    ValueTask SaveAtCloseAsync(DirtyBitmap bits, QuietImage? quiet, CancellationToken cancellationToken = default)
        => SaveAsync(bits, BitmapStoreState.Consistent, cancellationToken);

    /// <summary>The bits are about to be cleared: a store with lineages begins a new one, durably. Others do nothing.</summary>
    ValueTask ClearedAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <summary>Writes the bits while staying Active, so recovery after a later crash is finer; under a drain.</summary>
    ValueTask CheckpointAsync(DirtyBitmap bits, CancellationToken cancellationToken = default);

    /// <summary>
    /// Records, durably, whether the bitmap records writes when it is next opened (qcow2's "auto"
    /// flag, <see cref="BitmapLoadResult.Enabled"/>). A dirty_bitmap file always records when opened
    /// for tracking, so the default does nothing.
    /// </summary>
    ValueTask SetEnabledAsync(bool enabled, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <summary>Deletes the stored bitmap (the file, or the qcow2 directory entry and its clusters).</summary>
    ValueTask RemoveAsync(CancellationToken cancellationToken = default);
}
