using Strata.Block;

namespace Strata.Formats.Raw;

/// <summary>
/// A raw image whose format was guessed by probing, opened for writing: every request that could
/// change its first sector is refused when the sector would then look like an image format
/// (<see cref="ImageSignatures"/>), so the next open that probes it again still finds raw.
/// </summary>
/// <remarks>
/// The attack this stops: a guest writes a qcow2 header naming a host file as its backing file into
/// sector 0 of its raw disk; opened again without an explicit format, the disk becomes a qcow2 image
/// and the guest reads the host file. QEMU refuses such a write with EPERM (block/raw-format.c,
/// raw_co_pwritev, for a "probed" image) and warns at open; this node does the same, for data
/// writes, zeroing and discards alike (zeroing bytes can complete a magic too), at any offset and
/// length: a request that covers only part of the sector is checked against the sector as it would
/// read afterwards. Requests touching the first sector are serialized, so two of them cannot each
/// pass the check and together build a header.
/// </remarks>
public sealed class ProbedRawNode(IBlockNode file) : IBlockNode, IFormatNode
{
    private const int Guarded = ImageSignatures.ProbeLength;

    // Serializes the modifying requests that touch [0, Guarded): each checks the sector as it will
    // read after it, then writes, with no other such request in between.
    private readonly SemaphoreSlim _firstSector = new(1, 1);

    /// <summary>The raw file underneath.</summary>
    public IBlockNode File { get; } = file ?? throw new ArgumentNullException(nameof(file));

    public string DriverName => RawFormatDriver.FormatName;

    public string? FileName => File.FileName;

    public long Size => File.Size;

    public NodeCapabilities Capabilities => File.Capabilities;

    public NodeLimits Limits => File.Limits;

    public IBlockNode? Backing => null;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        => File.ReadAsync(offset, buffer, cancellationToken);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        if (offset >= Guarded)
        {
            await File.WriteAsync(offset, data, flags, cancellationToken);
            return;
        }

        await _firstSector.WaitAsync(cancellationToken);
        try
        {
            await CheckAsync(offset, data[..(int)Math.Min(data.Length, Guarded - offset)], cancellationToken);
            await File.WriteAsync(offset, data, flags, cancellationToken);
        }
        finally
        {
            _firstSector.Release();
        }
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
    {
        await ModifyAsync(offset, length, () => File.WriteZeroesAsync(offset, length, flags, cancellationToken), cancellationToken);
    }

    public async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        // A discarded range keeps its data or reads as zeroes afterwards; kept data was raw already,
        // so the zero outcome is the one to check.
        await ModifyAsync(offset, length, () => File.DiscardAsync(offset, length, cancellationToken), cancellationToken);
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => File.FlushAsync(cancellationToken);

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        => File.GetBlockStatusAsync(offset, length, cancellationToken);

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default) => File.ResizeAsync(newSize, cancellationToken);

    /// <summary>A raw image is its file: its user's permissions are the file's locks.</summary>
    public void SetPermissions(NodePermissions permissions, PermissionCheck check) => File.SetPermissions(permissions, check);

    public async ValueTask DisposeAsync()
    {
        await File.DisposeAsync();
        _firstSector.Dispose();
    }

    /// <summary>Runs a request that turns [offset, offset + length) into zeroes, checked when it touches the first sector.</summary>
    private async ValueTask ModifyAsync(long offset, long length, Func<ValueTask> run, CancellationToken cancellationToken)
    {
        if (offset >= Guarded || length == 0)
        {
            await run();
            return;
        }

        await _firstSector.WaitAsync(cancellationToken);
        try
        {
            var zeroes = new byte[(int)Math.Min(length, Guarded - offset)];
            await CheckAsync(offset, zeroes, cancellationToken);
            await run();
        }
        finally
        {
            _firstSector.Release();
        }
    }

    /// <summary>Throws when the first sector, with <paramref name="part"/> written at <paramref name="offset"/>, would probe as a format.</summary>
    private async ValueTask CheckAsync(long offset, ReadOnlyMemory<byte> part, CancellationToken cancellationToken)
    {
        var sector = new byte[(int)Math.Min(Guarded, Math.Max(File.Size, offset + part.Length))];
        await File.ReadAsync(0, sector.AsMemory(0, (int)Math.Min(sector.Length, File.Size)), cancellationToken);
        part.Span.CopyTo(sector.AsSpan((int)offset));
        if (ImageSignatures.Detect(sector) is { } format)
        {
            throw new BlockException(BlockError.PermissionDenied,
                $"write to the first sector of '{FileName}' refused: the image's format was probed, and it would then look like a {format} image (give format=raw to lift this)");
        }
    }
}
