using Strata.Block;
using Strata.Block.Bitmaps;

namespace Strata.Formats.DirtyBitmaps;

/// <summary>
/// A dirty_bitmap file opened read-only, as <c>img info</c> and <c>img map</c> (and a backup) see
/// it: a node of the disk's size that holds no data (reads are refused), describes the file
/// (<see cref="IImageFacts"/>) and gives its bits (<see cref="IBitmapImage"/>). Block status is
/// refused too, so that no copy (convert, compare) takes it for a disk of zeroes.
/// </summary>
internal sealed class DirtyBitmapView : IBlockNode, IFormatNode, IImageFacts, IBitmapImage
{
    private readonly DirtyBitmapHeader _header;

    public DirtyBitmapView(IBlockNode file, DirtyBitmapHeader header, DirtyBitmap bits, BitmapLoadResult loaded, bool tracked)
    {
        File = file;
        _header = header;
        Bits = bits;
        State = loaded.State;
        Tracked = tracked;
        FormatInfo = new ImageFormatInfo
        {
            ClusterSize = (int)header.Granularity,
            Dirty = header.State == DirtyBitmapFileState.Active && !tracked,
            Specific =
            [
                new("state", StateName),
                new("generation", (long)Math.Min(header.Generation, long.MaxValue)),
                new("granularity", header.Granularity),
                new("intent-granularity", header.IntentGranularity),
                new("dirty-count", bits.DirtyBytes),
                new("sha256", bits.Sha256()),
                new("lineage", header.HasLineage ? header.LineageId : "none"),
            ],
        };
    }

    public IBlockNode File { get; }

    public DirtyBitmap Bits { get; }

    public BitmapStoreState State { get; }

    public bool Tracked { get; }

    public ulong Generation => _header.Generation;

    /// <summary>
    /// The lineage; after a close, whether the image files still are as recorded then (stat(2) of
    /// each, asked when read: a backup asks right before it decides).
    /// </summary>
    public BitmapLineage? Lineage => _header.HasLineage
        ? new BitmapLineage(_header.LineageId, _header.LineageStart.Describe(),
            _header is { State: DirtyBitmapFileState.Consistent, Image: { } closed } ? ImageFileStamp.FirstChange(closed) : null)
        : null;

    /// <summary>
    /// The state's name for readers: "consistent", "frozen", "active" (a tracker holds the file
    /// now), "in use" (left active by a tracker that died: what is shown is the recovered superset)
    /// or "inconsistent" (the bits failed their checksum: all shown dirty).
    /// </summary>
    public string StateName => State switch
    {
        BitmapStoreState.Consistent => "consistent",
        BitmapStoreState.Frozen => "frozen",
        BitmapStoreState.Inconsistent => "inconsistent",
        _ => Tracked ? "active" : "in use",
    };

    public ImageFormatInfo FormatInfo { get; }

    public string DriverName => DirtyBitmapFormatDriver.FormatName;

    public string? FileName => File.FileName;

    public long Size => _header.DiskSize;

    public NodeCapabilities Capabilities => NodeCapabilities.ReadOnly;

    public NodeLimits Limits => NodeLimits.Default;

    public IBlockNode? Backing => null;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        => ValueTask.FromException(NotADisk());

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        => ValueTask.FromException(NotADisk());

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
        => ValueTask.FromException(NotADisk());

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
        => ValueTask.FromException(NotADisk());

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        => ValueTask.FromException<BlockExtent>(NotADisk());

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default) => ValueTask.FromException(NotADisk());

    public ValueTask DisposeAsync() => File.DisposeAsync();

    private BlockException NotADisk() =>
        BlockException.NotSupported($"'{FileName}' is a dirty_bitmap file, not a disk image: it holds no data");
}
