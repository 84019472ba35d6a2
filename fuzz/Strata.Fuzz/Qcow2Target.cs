using Strata.Block;
using Strata.Formats.Qcow2;

namespace Strata.Fuzz;

/// <summary>
/// The input is a qcow2 image file (docs/interop/qcow2.txt). It is opened read-only, then, on a fresh
/// copy, read-write, and driven the way a guest and <c>check</c> would: reads, block status, a few
/// writes, flush, check and repair.
/// </summary>
/// <remarks>
/// The image is refused or fails with <see cref="BlockException"/> only (DESIGN.md rule 5). Invariants
/// checked besides: block status describes a non-empty extent where it was asked, within the range
/// asked (the <see cref="IBlockNode.GetBlockStatusAsync"/> contract), and what a write wrote reads back.
/// </remarks>
internal sealed class Qcow2Target(bool writes) : IFuzzTarget
{
    /// <summary>
    /// The file is the input zero-extended to a multiple of this, so a seed truncated to its metadata
    /// still has room for the data clusters it points to (they read as zeroes).
    /// </summary>
    private const int FileGranule = 64 * 1024;

    /// <summary>How far writes may grow the file (a real file would be sparse; memory is not).</summary>
    private const long FileCap = 64L * 1024 * 1024;

    private const int IoLength = 4096;

    /// <summary>Block status is walked for this many extents at most from the start of the disk.</summary>
    private const int MaxExtents = 64;

    /// <summary>
    /// "qcow2", or "qcow2-read" without the read-write pass: the parser and check alone, many times
    /// faster while damaged images still send allocating writes into loops (see fuzz/qcow2/pending).
    /// Both share the qcow2 folders: what fails the read pass fails the whole target the same way.
    /// </summary>
    public string Name => writes ? "qcow2" : "qcow2-read";

    public async Task RunAsync(byte[] input, FuzzProgress progress)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(progress);
        await ReadOnlyAsync(input, progress);
        if (writes)
        {
            await ReadWriteAsync(input, progress);
        }
    }

    private static async Task ReadOnlyAsync(byte[] input, FuzzProgress progress)
    {
        var cancellationToken = progress.Cancellation;
        progress.Step = "open read-only";
        if (await OpenAsync(input, readOnly: true, cancellationToken) is not { } node)
        {
            return;
        }

        await Refused(progress, "read", () => ReadAroundAsync(node, cancellationToken));
        await Refused(progress, "block status", () => WalkStatusAsync(node, cancellationToken));
        await Refused(progress, "check", async () => await node.CheckAsync(Qcow2RepairMode.None, cancellationToken));
        await Refused(progress, "close read-only", node.DisposeAsync);
    }

    private static async Task ReadWriteAsync(byte[] input, FuzzProgress progress)
    {
        progress.Step = "open read-write";
        if (await OpenAsync(input, readOnly: false, progress.Cancellation) is not { } node)
        {
            return;
        }

        await ChangeAndCheckAsync(node, progress);
        // Closing flushes what is cached, which may meet the damage too.
        await Refused(progress, "close read-write", node.DisposeAsync);
    }

    private static async Task ChangeAndCheckAsync(Qcow2Node node, FuzzProgress progress)
    {
        var cancellationToken = progress.Cancellation;
        long size = node.Size;
        int length = (int)Math.Min(IoLength, size);
        var pattern = new byte[length];
        for (int i = 0; i < length; i++)
        {
            pattern[i] = (byte)(0xa5 ^ i);
        }

        // Written data must read back when the image's metadata is consistent. On a damaged one (a
        // cluster in use whose refcount says free, say) the allocator may hand that cluster out again,
        // as QEMU's does: the guest then overwrites its own data, which is the image's damage, not a
        // way out of it; writes landing on metadata are what the overlap check stops.
        progress.Step = "check before writing";
        bool consistent = await IsConsistentAsync(node, cancellationToken);

        // One write at the start and one in the middle (where an L2 table is rarely allocated yet),
        // each checked by reading it back, then the other ways a guest changes a disk.
        long middle = size / 2 / IoLength * IoLength;
        await Refused(progress, "write at 0", () => WriteAndReadBackAsync(node, 0, pattern, consistent, cancellationToken));
        if (middle >= length)
        {
            await Refused(progress, "write in the middle", () => WriteAndReadBackAsync(node, middle, pattern, consistent, cancellationToken));
        }

        await Refused(progress, "write zeroes", () => node.WriteZeroesAsync(0, length / 2, ZeroFlags.MayUnmap, cancellationToken));
        await Refused(progress, "discard", () => node.DiscardAsync(size - length, length, cancellationToken));
        await Refused(progress, "flush", () => node.FlushAsync(cancellationToken));
        await Refused(progress, "block status after writes", () => WalkStatusAsync(node, cancellationToken));
        await Refused(progress, "check and repair", async () => await node.CheckAsync(Qcow2RepairMode.All, cancellationToken));
    }

    /// <summary>The node, or null when the image was refused as it should be: with a <see cref="BlockException"/>.</summary>
    private static async Task<Qcow2Node?> OpenAsync(byte[] input, bool readOnly, CancellationToken cancellationToken)
    {
        long size = Math.Max(FileGranule, (input.LongLength + FileGranule - 1) / FileGranule * FileGranule);
        var memory = new MemoryNode(size);
        await memory.WriteAsync(0, input, WriteFlags.None, CancellationToken.None);
        var file = new CappedFileNode(memory, FileCap, readOnly, cancellationToken);
        try
        {
            return await Qcow2Node.OpenAsync(file, readOnly, cancellationToken);
        }
        catch (BlockException)
        {
            await file.DisposeAsync();
            return null;
        }
    }

    private static async ValueTask ReadAroundAsync(Qcow2Node node, CancellationToken cancellationToken)
    {
        long size = node.Size;
        var buffer = new byte[(int)Math.Min(IoLength, size)];
        foreach (long offset in new[] { 0, size / 2, size - buffer.Length })
        {
            await node.ReadAsync(offset, buffer, cancellationToken);
        }
    }

    private static async ValueTask WalkStatusAsync(Qcow2Node node, CancellationToken cancellationToken)
    {
        long size = node.Size;
        long offset = 0;
        for (int i = 0; i < MaxExtents && offset < size; i++)
        {
            var extent = await node.GetBlockStatusAsync(offset, size - offset, cancellationToken);
            if (extent.Offset != offset || extent.Length <= 0 || extent.Length > size - offset)
            {
                throw new FuzzFailure($"block status at {offset} for {size - offset} bytes described {extent.Offset}+{extent.Length}");
            }

            offset += extent.Length;
        }
    }

    /// <summary>True when check finds neither corruption nor a structure it cannot read.</summary>
    private static async Task<bool> IsConsistentAsync(Qcow2Node node, CancellationToken cancellationToken)
    {
        try
        {
            var result = await node.CheckAsync(Qcow2RepairMode.None, cancellationToken);
            return result.Corruptions == 0 && result.CheckErrors == 0;
        }
        catch (BlockException)
        {
            return false;
        }
    }

    private static async ValueTask WriteAndReadBackAsync(Qcow2Node node, long offset, byte[] pattern, bool mustReadBack, CancellationToken cancellationToken)
    {
        await node.WriteAsync(offset, pattern, WriteFlags.None, cancellationToken);
        var back = new byte[pattern.Length];
        await node.ReadAsync(offset, back, cancellationToken);
        if (mustReadBack && !back.AsSpan().SequenceEqual(pattern))
        {
            int at = back.AsSpan().CommonPrefixLength(pattern);
            throw new FuzzFailure($"{pattern.Length} bytes written at {offset} read back different from byte {at} on");
        }
    }

    /// <summary>Runs one step; a <see cref="BlockException"/> is the image refusing it, and the next step still runs.</summary>
    private static async Task Refused(FuzzProgress progress, string name, Func<ValueTask> step)
    {
        progress.Step = name;
        try
        {
            await step();
        }
        catch (BlockException)
        {
            // The documented way of saying no.
        }
    }
}
