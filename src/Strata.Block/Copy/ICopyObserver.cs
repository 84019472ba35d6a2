namespace Strata.Block.Copy;

/// <summary>
/// Hears, run by run, what a <see cref="BlockCopy"/> leaves the target reading, from the copy's own
/// buffers: a backup hashes the bytes it wrote without reading them back
/// (<see cref="BlockCopyOptions.Observer"/>).
/// </summary>
/// <remarks>
/// <para>
/// What is reported: every byte of the plan's ranges that the view owns (all of them for a whole
/// chain), once the target holds it: data after its write returned, zeroes after their write
/// returned or, over a target that reads as zeroes (<see cref="BlockCopyOptions.TargetIsZero"/>),
/// when the copy decided no write was needed, including the zero runs the plan left out (those are
/// reported before any worker starts). Runs a bounded view does not own are not reported: the target
/// keeps what it held there. Nothing is reported for a failed write.
/// </para>
/// <para>
/// Threading: calls come from the copy's workers, several at once, never for overlapping ranges at
/// the same time. A range is reported more than once only when a <see cref="BlockCopyOptions.Step"/>
/// runs its chunk again or <see cref="BlockCopyOptions.Alignment"/> rounds an extent over a zero run
/// the plan left out; the later report is what the target holds. A call must be quick (a worker waits
/// for it) and must not throw: a throw fails the copy like a failed write.
/// </para>
/// </remarks>
public interface ICopyObserver
{
    /// <summary>The target now reads <paramref name="bytes"/> at <paramref name="offset"/>: the worker's buffer, valid only during the call.</summary>
    void Data(long offset, ReadOnlySpan<byte> bytes);

    /// <summary>The target now reads zeroes over <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    void Zeroes(long offset, long length);
}
