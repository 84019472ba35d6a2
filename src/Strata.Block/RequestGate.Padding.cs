using System.Buffers;

namespace Strata.Block;

/// <summary>
/// Requests not aligned to the node's <see cref="NodeLimits.RequestAlignment"/> are padded here, so a
/// node's alignment is its own business and a guest with 512-byte sectors runs on storage that
/// takes 4 KiB blocks (QEMU's block/io.c does the same: bdrv_pad_request, and the serialising
/// requests of bdrv_co_pwritev).
/// </summary>
/// <remarks>
/// A request is cut into at most three parts: a partial head block, the aligned middle, which goes
/// to the node as it is, and a partial tail block. A partial block is read whole; a write (or
/// write-zeroes) patches its part in and writes the block back.
/// <para>
/// Invariant, on a node whose alignment is above 1: a padded write holds its whole aligned range
/// exclusively in <see cref="_serialising"/> from reading its partial blocks to writing them back,
/// and every aligned write, write-zeroes and discard holds its own range shared. So no write lands
/// in a block between the read and the write-back of a read-modify-write of that block, and two
/// padded writes into one block never lose each other's bytes. Reads take no lock: a read that
/// overlaps a write in flight may see either content, as without padding, and what a
/// read-modify-write writes back outside its own bytes is what was already there.
/// </para>
/// <para>
/// A discard is a hint whose bytes are unspecified afterwards: its partial blocks are left alone.
/// Block status is asked for the aligned range and cut to the request. A node whose size is not a
/// multiple of its alignment is asked for its last, partial block as it is.
/// </para>
/// </remarks>
public sealed partial class RequestGate
{
    // Serialises read-modify-write against every other write of the same blocks (see the remarks);
    // taken only for nodes whose alignment is above 1, so byte-granular nodes pay nothing.
    private readonly RangeLock _serialising = new();

    private static bool IsAligned(IBlockNode node, long offset, long length)
    {
        int align = node.Limits.RequestAlignment;
        return align <= 1 || (offset % align == 0 && length % align == 0);
    }

    /// <summary>The largest piece one node request carries: the transfer limit, rounded down to the alignment.</summary>
    private static int MaxPiece(IBlockNode node)
    {
        int align = Math.Max(1, node.Limits.RequestAlignment);
        int max = node.Limits.MaxTransfer;
        return Math.Max(align, max - (max % align));
    }

    private static async ValueTask ReadSplitAsync(IBlockNode node, long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int max = MaxPiece(node);
        for (int done = 0; done < buffer.Length; done += max)
        {
            int n = Math.Min(max, buffer.Length - done);
            await node.ReadAsync(offset + done, buffer.Slice(done, n), cancellationToken);
        }
    }

    private static async ValueTask WriteSplitAsync(IBlockNode node, long offset, ReadOnlyMemory<byte> data, WriteFlags flags,
        CancellationToken cancellationToken)
    {
        int max = MaxPiece(node);
        for (int done = 0; done < data.Length; done += max)
        {
            int n = Math.Min(max, data.Length - done);
            await node.WriteAsync(offset + done, data.Slice(done, n), flags, cancellationToken);
        }
    }

    private static async ValueTask ReadPaddedAsync(IBlockNode node, long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        foreach (var part in Split(node, offset, buffer.Length))
        {
            var into = buffer.Slice((int)(part.Offset - offset), (int)part.Length);
            if (!part.IsPartial)
            {
                await ReadSplitAsync(node, part.Offset, into, cancellationToken);
                continue;
            }

            byte[] block = ArrayPool<byte>.Shared.Rent(part.BlockLength);
            try
            {
                await node.ReadAsync(part.BlockStart, block.AsMemory(0, part.BlockLength), cancellationToken);
                block.AsSpan((int)(part.Offset - part.BlockStart), (int)part.Length).CopyTo(into.Span);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(block);
            }
        }
    }

    private async ValueTask WritePaddedAsync(IBlockNode node, long offset, ReadOnlyMemory<byte> data, WriteFlags flags,
        CancellationToken cancellationToken)
    {
        using var serialised = await SerialiseAsync(node, offset, data.Length, cancellationToken);
        foreach (var part in Split(node, offset, data.Length))
        {
            var from = data.Slice((int)(part.Offset - offset), (int)part.Length);
            if (part.IsPartial)
            {
                await PatchAsync(node, part, from, flags, cancellationToken);
            }
            else
            {
                await WriteSplitAsync(node, part.Offset, from, flags, cancellationToken);
            }
        }
    }

    private async ValueTask WriteZeroesPaddedAsync(IBlockNode node, long offset, long length, ZeroFlags flags, CancellationToken cancellationToken)
    {
        var parts = Split(node, offset, length);
        if ((flags & ZeroFlags.NoFallback) != 0 && parts.Any(p => p.IsPartial))
        {
            // Its partial blocks could only be written as data, the fallback a fast zero forbids.
            throw BlockException.NotSupported($"fast zeroing of a range not aligned to the disk's {node.Limits.RequestAlignment}-byte blocks");
        }

        using var serialised = await SerialiseAsync(node, offset, length, cancellationToken);
        var writeFlags = (flags & ZeroFlags.Fua) != 0 ? WriteFlags.Fua : WriteFlags.None;
        foreach (var part in parts)
        {
            if (part.IsPartial)
            {
                await PatchAsync(node, part, null, writeFlags, cancellationToken);
            }
            else
            {
                await node.WriteZeroesAsync(part.Offset, part.Length, flags, cancellationToken);
            }
        }
    }

    private async ValueTask DiscardAlignedPartAsync(IBlockNode node, long offset, long length, CancellationToken cancellationToken)
    {
        int align = node.Limits.RequestAlignment;
        long start = AlignUp(offset, align);
        long end = Math.Max(start, offset + length - ((offset + length) % align));
        if (end == start)
        {
            return;
        }

        using var serialised = await _serialising.AcquireSharedAsync(start, end - start, cancellationToken);
        await node.DiscardAsync(start, end - start, cancellationToken);
    }

    private static async ValueTask<ChainExtent> GetBlockStatusPaddedAsync(IBlockNode node, long offset, long length, CancellationToken cancellationToken)
    {
        int align = node.Limits.RequestAlignment;
        long end = offset + length;
        long stop = Math.Min(AlignUp(end, align), node.Size);
        var extent = await ChainStatus.GetAsync(node, offset - (offset % align), stop - (offset - (offset % align)), cancellationToken);
        while (extent.End <= offset)
        {
            extent = await ChainStatus.GetAsync(node, extent.End, stop - extent.End, cancellationToken);
        }

        long cut = offset - extent.Offset;
        return extent with
        {
            Offset = offset,
            Length = Math.Min(extent.End, end) - offset,
            HostOffset = extent.HostOffset < 0 ? -1 : extent.HostOffset + cut,
        };
    }

    /// <summary>
    /// Takes the range lock a write needs on a node with an alignment: shared for an aligned write,
    /// exclusive over the whole aligned range for one that will read-modify-write.
    /// </summary>
    private async ValueTask<IDisposable> SerialiseAsync(IBlockNode node, long offset, long length, CancellationToken cancellationToken)
    {
        if (IsAligned(node, offset, length))
        {
            return await _serialising.AcquireSharedAsync(offset, length, cancellationToken);
        }

        int align = node.Limits.RequestAlignment;
        long start = offset - (offset % align);
        return await _serialising.AcquireExclusiveAsync(start, AlignUp(offset + length, align) - start, cancellationToken);
    }

    /// <summary>Reads a partial part's block, puts <paramref name="data"/> (null: zeroes) in its place and writes the block back.</summary>
    private static async ValueTask PatchAsync(IBlockNode node, PaddedPart part, ReadOnlyMemory<byte>? data, WriteFlags flags,
        CancellationToken cancellationToken)
    {
        byte[] block = ArrayPool<byte>.Shared.Rent(part.BlockLength);
        try
        {
            var whole = block.AsMemory(0, part.BlockLength);
            await node.ReadAsync(part.BlockStart, whole, cancellationToken);
            var patch = whole.Span.Slice((int)(part.Offset - part.BlockStart), (int)part.Length);
            if (data is { } bytes)
            {
                bytes.Span.CopyTo(patch);
            }
            else
            {
                patch.Clear();
            }

            await node.WriteAsync(part.BlockStart, whole, flags, cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(block);
        }
    }

    /// <summary>Cuts [offset, offset+length) into a partial head block, the aligned middle and a partial tail block, each when present.</summary>
    private static List<PaddedPart> Split(IBlockNode node, long offset, long length)
    {
        int align = node.Limits.RequestAlignment;
        long end = offset + length;
        var parts = new List<PaddedPart>(3);
        long at = offset;
        if (length > 0 && at % align != 0)
        {
            long blockStart = at - (at % align);
            long partEnd = Math.Min(end, blockStart + align);
            parts.Add(PaddedPart.Partial(node, blockStart, at, partEnd - at));
            at = partEnd;
        }

        long middleEnd = end - (end % align);
        if (middleEnd > at)
        {
            parts.Add(new PaddedPart(at, middleEnd - at, at, 0));
            at = middleEnd;
        }

        if (at < end)
        {
            parts.Add(PaddedPart.Partial(node, at, at, end - at));
        }

        return parts;
    }

    private static long AlignUp(long value, int align) => value + ((align - (value % align)) % align);

    /// <summary>One part of a padded request; a partial one lies in the block [BlockStart, BlockStart + BlockLength).</summary>
    private readonly record struct PaddedPart(long Offset, long Length, long BlockStart, int BlockLength)
    {
        public bool IsPartial => BlockLength > 0;

        public static PaddedPart Partial(IBlockNode node, long blockStart, long offset, long length) =>
            new(offset, length, blockStart, (int)Math.Min(node.Limits.RequestAlignment, node.Size - blockStart));
    }
}
