using Strata.Block;

namespace Strata.Formats.Qcow2;

/// <summary>
/// A qcow2 image (docs/interop/qcow2.txt) on a file node, with an optional backing node.
/// </summary>
/// <remarks>PUBLIC SURFACE ONLY — the driver is being written; every member below is the agreed contract.</remarks>
public sealed class Qcow2Node : IBlockNode
{
    private Qcow2Node()
    {
    }

    public const int Magic = 0x514649fb;

    public string DriverName => "qcow2";

    public string? FileName => File.FileName;

    public long Size => throw new NotImplementedException();

    public NodeCapabilities Capabilities => throw new NotImplementedException();

    public NodeLimits Limits => throw new NotImplementedException();

    /// <summary>The backing node attached with <see cref="AttachBacking"/>, if any.</summary>
    public IBlockNode? Backing => throw new NotImplementedException();

    /// <summary>The node holding the image's bytes (the "file" child); owned by this node.</summary>
    public IBlockNode File => throw new NotImplementedException();

    /// <summary>Header facts for <c>info</c>; backing file name and format as recorded.</summary>
    public Qcow2Info Info => throw new NotImplementedException();

    /// <summary>
    /// Opens the image in <paramref name="file"/>, validating every header field, table size and offset.
    /// Does not open the backing file: the caller resolves <see cref="Qcow2Info.BackingFile"/> and calls
    /// <see cref="AttachBacking"/>. Read-write opening sets the dirty bit when lazy refcounts are on and
    /// clears unknown autoclear bits; an image marked corrupt opens read-only only.
    /// </summary>
    public static ValueTask<Qcow2Node> OpenAsync(IBlockNode file, bool readOnly, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    /// <summary>Writes a new empty image into <paramref name="file"/> (which it truncates), as qemu-img create does.</summary>
    public static ValueTask CreateAsync(IBlockNode file, Qcow2CreateOptions options, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    /// <summary>Sets the node unallocated clusters read from; it becomes owned by this node.</summary>
    public void AttachBacking(IBlockNode? backing) => throw new NotImplementedException();

    /// <summary>Rewrites the backing file name and format in the header (rebase -u); data is untouched.</summary>
    public ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    /// <summary>Deallocates every cluster so the image reads entirely from its backing (after a commit).</summary>
    public ValueTask MakeEmptyAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Walks all metadata, compares refcounts with references, optionally repairs (qemu-img check).</summary>
    public ValueTask<Qcow2CheckResult> CheckAsync(Qcow2RepairMode repair, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    /// <summary>Grows the image (growing the L1 table when needed); shrinking is refused with NotSupported.</summary>
    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Flushes, clears the dirty bit if this node set it, and disposes the file and backing nodes.</summary>
    public ValueTask DisposeAsync() => throw new NotImplementedException();
}
