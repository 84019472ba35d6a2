using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Strata.Block;

namespace Strata.Formats.Rbd;

/// <summary>
/// Block status from librbd's object map, as QEMU asks it (qemu_rbd_co_block_status):
/// rbd_diff_iterate2 from the image's creation (no "from" snapshot), parent included, whole objects
/// only, which the fast-diff object map answers without reading the objects. An object that exists
/// is data (it may hold zeroes: data is always a correct answer); a range no object covers reads
/// as zeroes. Without fast-diff, or with its map flagged invalid, everything is reported as data.
/// </summary>
public sealed partial class RbdImageNode
{
    /// <summary>What the callback returns to stop the iteration early; any negative value other than librbd's errors.</summary>
    private const int StopIterating = -100_000;

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        if (!_fastDiff || FastDiffInvalid())
        {
            return ValueTask.FromResult(Data(offset, length));
        }

        // The object map walk is a synchronous call that may wait for the cluster.
        return new ValueTask<BlockExtent>(Task.Run(() => Diff(offset, length), cancellationToken));
    }

    private static BlockExtent Data(long offset, long length) => new(offset, length, BlockState.Allocated | BlockState.Data, offset);

    private bool FastDiffInvalid() =>
        RbdNative.GetFlags(_image, out ulong flags) < 0 || (flags & RbdNative.FlagFastDiffInvalid) != 0;

    private unsafe BlockExtent Diff(long offset, long length)
    {
        var walk = new DiffWalk { Start = offset, End = offset + length, RunStart = -1, HoleEnd = -1 };
        int result = RbdNative.DiffIterate2(_image, null, (ulong)offset, (ulong)length, 1, 1,
            (IntPtr)(delegate* unmanaged[Cdecl]<ulong, nuint, int, IntPtr, int>)&OnExtent, (IntPtr)(&walk));
        if (result < 0 && result != StopIterating)
        {
            // Status is advice; an image whose map cannot be read is still read correctly as data.
            return Data(offset, length);
        }

        if (walk.RunStart >= 0)
        {
            return Data(offset, walk.RunEnd - offset);
        }

        long holeEnd = walk.HoleEnd >= 0 ? walk.HoleEnd : walk.End;
        return new BlockExtent(offset, holeEnd - offset, BlockState.Allocated | BlockState.Zero);
    }

    /// <summary>
    /// One extent from rbd_diff_iterate2, in increasing order; with whole objects it may reach out of
    /// the asked range, so it is clipped. Stops at the first change between hole and data.
    /// </summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe int OnExtent(ulong offset, nuint length, int exists, IntPtr argument)
    {
        ref var walk = ref *(DiffWalk*)argument;
        long start = Math.Max((long)offset, walk.Start);
        long end = Math.Min((long)offset + (long)length, walk.End);
        if (exists == 0 || end <= start)
        {
            return 0;
        }

        if (walk.RunStart < 0)
        {
            if (start > walk.Start)
            {
                walk.HoleEnd = start;
                return StopIterating;
            }

            (walk.RunStart, walk.RunEnd) = (start, end);
            return 0;
        }

        if (start > walk.RunEnd)
        {
            return StopIterating;
        }

        walk.RunEnd = Math.Max(walk.RunEnd, end);
        return 0;
    }

    /// <summary>The state of one walk, on the calling thread's stack (the callback runs on it).</summary>
    private struct DiffWalk
    {
        public long Start;
        public long End;

        /// <summary>Where the data run at <see cref="Start"/> begins, or -1 while none was seen.</summary>
        public long RunStart;
        public long RunEnd;

        /// <summary>Where the hole at <see cref="Start"/> ends, once data after it was seen; -1 otherwise.</summary>
        public long HoleEnd;
    }
}
