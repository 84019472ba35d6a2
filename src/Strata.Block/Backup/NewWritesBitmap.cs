using Strata.Block.Bitmaps;

namespace Strata.Block.Backup;

/// <summary>
/// The guest writes since a backup started, at its bitmap's granularity (QEMU's successor bitmap):
/// at the job's end the bitmap keeps exactly these after a success. It observes the drive's gate from
/// the job's start to its end, both under a drain, so it misses no write of that span.
/// </summary>
internal sealed class NewWritesBitmap(long diskSize, long granularity) : IWriteObserver
{
    public DirtyBitmap Bits { get; } = new(diskSize, granularity);

    public ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public void OnWritten(long offset, long length) => Bits.Set(offset, length);
}
