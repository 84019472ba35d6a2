using Strata.Block;

namespace Strata.Daemon.Tests.ToyDriver;

/// <summary>A toy image open: the disk's bytes are its file's, <see cref="DataOffset"/> further on.</summary>
internal sealed class ToyNode(IBlockNode file, long size, bool readOnly) : IBlockNode, IFormatNode
{
    public const int DataOffset = 4096;

    public IBlockNode File { get; } = file;

    public string DriverName => ToyFormatDriver.FormatName;

    public string? FileName => File.FileName;

    public long Size { get; } = size;

    public NodeCapabilities Capabilities => readOnly ? NodeCapabilities.ReadOnly : File.Capabilities & ~NodeCapabilities.Resize;

    public NodeLimits Limits => File.Limits;

    public IBlockNode? Backing => null;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        => File.ReadAsync(DataOffset + offset, buffer, cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
        => File.WriteAsync(DataOffset + offset, data, flags, cancellationToken);

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
        => File.WriteZeroesAsync(DataOffset + offset, length, flags, cancellationToken);

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
        => File.DiscardAsync(DataOffset + offset, length, cancellationToken);

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => File.FlushAsync(cancellationToken);

    public async ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        var extent = await File.GetBlockStatusAsync(DataOffset + offset, length, cancellationToken);
        return new BlockExtent(offset, extent.Length, extent.State);
    }

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
        => throw BlockException.NotSupported("a toy image cannot be resized");

    public ValueTask DisposeAsync() => File.DisposeAsync();
}
