namespace Strata.Block;

/// <summary>
/// One layer of a disk: an image format (raw, qcow2), a protocol (a file), or a filter.
/// </summary>
/// <remarks>
/// Contract for callers (the <see cref="RequestGate"/> keeps it for guest I/O, padding what is not
/// aligned, so drivers never re-check): <c>0 &lt;= offset</c>, <c>offset + length &lt;= Size</c> without
/// overflow, offset and length are multiples of <see cref="NodeLimits.RequestAlignment"/>, and one request is at most
/// <see cref="NodeLimits.MaxTransfer"/> bytes. Requests may be issued concurrently; a driver
/// serializes internally only what it must (for example two allocations of the same cluster).
/// All I/O is positional: no node has a shared current position.
/// </remarks>
public interface IBlockNode : IAsyncDisposable
{
    /// <summary>The driver name as qemu-img spells it: "raw", "qcow2", "memory", …</summary>
    string DriverName { get; }

    /// <summary>The file this node reads, when it has one (for messages and <c>info</c>).</summary>
    string? FileName { get; }

    /// <summary>The virtual size in bytes the node presents to its parent.</summary>
    long Size { get; }

    NodeCapabilities Capabilities { get; }

    NodeLimits Limits { get; }

    /// <summary>The node that unallocated regions of this one read from, if any.</summary>
    IBlockNode? Backing { get; }

    /// <summary>Fills <paramref name="buffer"/> with the bytes at <paramref name="offset"/>.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default);

    /// <summary>Writes <paramref name="data"/>; with <see cref="WriteFlags.Fua"/> it is durable on return.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None,
        CancellationToken cancellationToken = default);

    /// <summary>Makes the range read as zeroes; may deallocate it when <see cref="ZeroFlags.MayUnmap"/> is set.</summary>
    ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None,
        CancellationToken cancellationToken = default);

    /// <summary>Hints that the range is no longer needed; its content is unspecified afterwards.</summary>
    ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default);

    /// <summary>Makes every completed write durable (metadata included).</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Describes the first extent at <paramref name="offset"/> as this layer alone sees it (no look
    /// through to the backing node). The extent is never longer than <paramref name="length"/> and never
    /// empty while <paramref name="length"/> is positive.
    /// </summary>
    ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default);

    /// <summary>Changes the virtual size. Drivers that cannot shrink throw <see cref="BlockError.NotSupported"/>.</summary>
    ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes what this node's user does with the image and forbids other users what it does not share
    /// (QEMU's permissions, docs/locking.md): a file takes QEMU's lock bytes, so other processes,
    /// Strata's and QEMU's, see them. A node with no locks (memory, a store with no lock service)
    /// accepts anything: that is the default.
    /// </summary>
    /// <remarks>
    /// Contract: a format node passes the permissions on to its file as its metadata needs them
    /// (<see cref="NodePermissions.ForMetadataFile"/>) and leaves its backing node alone: whoever
    /// attaches a backing node sets that node's permissions (<see cref="NodePermissions.ForBacking"/>).
    /// A change that only gives permissions up never fails. One that gains a permission fails with
    /// <see cref="BlockError.Locked"/> when another user holds what this one forbids or forbids what it
    /// takes, and then changes nothing. Fast (lock bookkeeping, no waiting), so it may run under a
    /// drain; may run while requests are in flight, never concurrently with itself.
    /// </remarks>
    void SetPermissions(NodePermissions permissions, PermissionCheck check)
    {
    }
}
