using Microsoft.Win32.SafeHandles;
using Strata.Block;

namespace Strata.Formats.Raw;

/// <summary>
/// Reads and writes on a file open with O_DIRECT (cache=none). The kernel then moves data straight
/// between the device and our memory, which it accepts only when the file offset and length are
/// multiples of the file's request alignment and the memory address a multiple of its memory
/// alignment. Both are found as QEMU finds them (block/file-posix.c, raw_probe_alignment): the
/// device's logical block size, else the smallest of 512…4096 that a read accepts.
/// </summary>
/// <remarks>
/// Callers may still ask anything, byte-aligned (qcow2 metadata, an NBD client's odd write): such a
/// request goes through an aligned bounce buffer, and a write that covers a sector only in part
/// becomes read-modify-write of that sector. Every write holds its sectors in a
/// <see cref="RangeLock"/>, a partial one exclusively, so that two writes sharing a sector cannot
/// both read it and one write back a stale copy over the other (QEMU serialises its padded requests
/// against overlapping ones for the same reason, block/io.c). Transfers run on
/// <see cref="BlockingIoThreads"/>: a direct transfer waits for the device, and the caller (an NBD
/// connection's reader) should not.
/// </remarks>
internal sealed class DirectIo : IDisposable
{
    /// <summary>QEMU's MAX_BLOCKSIZE and the page size: the largest alignment tried, and the one chosen when a probe cannot tell.</summary>
    private const int MaxAlignment = 4096;

    /// <summary>The most one bounce transfer carries; longer requests are done in pieces of this size.</summary>
    private const int BounceSize = 256 * 1024;

    /// <summary>Bounce buffers kept for reuse: enough for a deep queue of unaligned requests, 8 MiB at most.</summary>
    private const int BuffersKept = 32;

    private static readonly int[] Candidates = [1, 512, 1024, 2048, 4096];

    private readonly SafeFileHandle _handle;
    private readonly RangeLock _sectors = new();
    private readonly AlignedBufferPool _bounce;

    private DirectIo(SafeFileHandle handle, int requestAlignment, int memoryAlignment)
    {
        _handle = handle;
        RequestAlignment = requestAlignment;
        MemoryAlignment = memoryAlignment;
        int size = Math.Max(requestAlignment, BounceSize - (BounceSize % requestAlignment));
        _bounce = new AlignedBufferPool(size, Math.Max(MaxAlignment, memoryAlignment), BuffersKept);
    }

    /// <summary>File offsets and lengths of a direct transfer are multiples of this.</summary>
    public int RequestAlignment { get; }

    /// <summary>The memory of a direct transfer starts on a multiple of this.</summary>
    public int MemoryAlignment { get; }

    /// <summary>Finds the alignments of a file just opened with O_DIRECT; throws when no alignment works.</summary>
    public static DirectIo Probe(SafeFileHandle handle, string path)
    {
        ArgumentNullException.ThrowIfNull(handle);
        int request = Posix.LogicalBlockSize(handle);
        int memory;
        using (var probe = new AlignedBuffer(2 * MaxAlignment, MaxAlignment))
        {
            var buffer = probe.Span;
            if (request <= 0)
            {
                // A read of any size succeeds on an empty file: then nothing is learnt, take the largest.
                request = FirstWorking(handle, buffer, length: 0);
                request = request == 1 ? MaxAlignment : request;
            }

            memory = FirstWorking(handle, buffer, length: MaxAlignment);
            memory = memory == 1 ? request : memory;
        }

        if (request <= 0 || memory <= 0)
        {
            throw BlockException.NotSupported($"cache=none: no O_DIRECT alignment works for '{path}' (use cache=writeback)");
        }

        return new DirectIo(handle, request, memory);
    }

    /// <summary>Fills <paramref name="buffer"/> from <paramref name="offset"/>; what lies past the end of the file reads as zeroes.</summary>
    public unsafe void Read(long offset, Span<byte> buffer)
    {
        fixed (byte* pointer = buffer)
        {
            if (IsDirect(offset, buffer.Length, pointer))
            {
                ReadSectors(offset, buffer);
                return;
            }
        }

        var bounce = _bounce.Rent();
        try
        {
            var sectors = bounce.Span;
            for (int done = 0; done < buffer.Length;)
            {
                var (start, skip, length, n) = Piece(offset, done, buffer.Length, sectors.Length);
                ReadSectors(start, sectors[..length]);
                sectors.Slice(skip, n).CopyTo(buffer[done..]);
                done += n;
            }
        }
        finally
        {
            _bounce.Return(bounce);
        }
    }

    /// <summary>
    /// Writes <paramref name="data"/> at <paramref name="offset"/> of <paramref name="file"/> (the node
    /// this serves, for its size), leaving the file exactly as long as a plain write would.
    /// </summary>
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, IBlockNode file, CancellationToken cancellationToken)
    {
        long end = offset + data.Length;
        long start = AlignDown(offset);
        long alignedEnd = AlignUp(end);
        bool partial = start != offset || alignedEnd != end;

        // A partial last sector beyond the end of the file: writing it whole leaves the file longer
        // than asked, so it is cut back after; until then no other write may grow the file, which
        // the lock ensures by covering everything from here on.
        bool pastEnd = partial && alignedEnd > file.Size;
        using var held = !partial
            ? await _sectors.AcquireSharedAsync(start, alignedEnd - start, cancellationToken)
            : await _sectors.AcquireExclusiveAsync(start, pastEnd ? long.MaxValue - start : alignedEnd - start, cancellationToken);
        long sizeBefore = file.Size;
        await BlockingIoThreads.Shared.RunAsync(() => Write(offset, data.Span));
        if (pastEnd && alignedEnd > Math.Max(sizeBefore, end))
        {
            RandomAccess.SetLength(_handle, Math.Max(sizeBefore, end));
        }
    }

    /// <summary>
    /// Holds the sectors of a range that the file system zeroes or punches in place (fallocate), so
    /// that a read-modify-write of a shared sector cannot write stale bytes back over the zeroes.
    /// </summary>
    public ValueTask<IDisposable> HoldAsync(long offset, long length, CancellationToken cancellationToken)
    {
        long start = AlignDown(offset);
        return _sectors.AcquireSharedAsync(start, AlignUp(offset + length) - start, cancellationToken);
    }

    public void Dispose() => _bounce.Dispose();

    /// <summary>
    /// The smallest candidate alignment a read at offset 0 accepts (0: none): with
    /// <paramref name="length"/> 0 as the read's length, else as the misalignment of its memory.
    /// Only EINVAL means "misaligned"; any other outcome is taken as accepted, as QEMU does.
    /// </summary>
    private static int FirstWorking(SafeFileHandle handle, Span<byte> buffer, int length)
    {
        foreach (int candidate in Candidates)
        {
            var attempt = length == 0 ? buffer[..candidate] : buffer.Slice(candidate, length);
            if (Posix.ReadOnce(handle, attempt, 0) != Posix.EINVAL)
            {
                return candidate;
            }
        }

        return 0;
    }

    private unsafe void Write(long offset, ReadOnlySpan<byte> data)
    {
        fixed (byte* pointer = data)
        {
            if (IsDirect(offset, data.Length, pointer))
            {
                RandomAccess.Write(_handle, data, offset);
                return;
            }
        }

        var bounce = _bounce.Rent();
        try
        {
            var sectors = bounce.Span;
            for (int done = 0; done < data.Length;)
            {
                var (start, skip, length, n) = Piece(offset, done, data.Length, sectors.Length);

                // Only the first and the last sector can be partly ours; what else they hold is read first.
                if (skip != 0)
                {
                    ReadSectors(start, sectors[..RequestAlignment]);
                }

                int last = (int)AlignDown(skip + n);
                if (last != skip + n && (last != 0 || skip == 0))
                {
                    ReadSectors(start + last, sectors.Slice(last, RequestAlignment));
                }

                data.Slice(done, n).CopyTo(sectors[skip..]);
                RandomAccess.Write(_handle, sectors[..length], start);
                done += n;
            }
        }
        finally
        {
            _bounce.Return(bounce);
        }
    }

    /// <summary>
    /// The next piece of a request of <paramref name="total"/> bytes at <paramref name="offset"/> that
    /// goes through a bounce buffer of <paramref name="room"/> bytes, <paramref name="done"/> bytes in:
    /// the aligned sectors it spans (<c>Start</c>, <c>Length</c>), where the request's bytes begin in
    /// them (<c>Skip</c>) and how many of them it carries (<c>Count</c>).
    /// </summary>
    private (long Start, int Skip, int Length, int Count) Piece(long offset, int done, int total, int room)
    {
        long at = offset + done;
        long start = AlignDown(at);
        int skip = (int)(at - start);
        int length = (int)Math.Min(room, AlignUp(offset + total) - start);
        return (start, skip, length, Math.Min(length - skip, total - done));
    }

    /// <summary>An aligned read; a direct read comes back short only at the end of the file, and the rest is zeroes.</summary>
    private void ReadSectors(long offset, Span<byte> buffer)
    {
        int n = RandomAccess.Read(_handle, buffer, offset);
        buffer[n..].Clear();
    }

    private unsafe bool IsDirect(long offset, int length, byte* pointer)
        => offset % RequestAlignment == 0 && length % RequestAlignment == 0 && (nint)pointer % MemoryAlignment == 0;

    private long AlignDown(long value) => value - (value % RequestAlignment);

    private long AlignUp(long value) => AlignDown(value + RequestAlignment - 1);
}
