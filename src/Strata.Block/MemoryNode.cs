namespace Strata.Block;

/// <summary>
/// A disk held in memory, for tests and the demo. Tracks which 4 KiB pages were ever written so that
/// block status can tell data from never-written zeroes, as a sparse file would.
/// </summary>
public sealed class MemoryNode : IBlockNode
{
    private const int PageSize = 4096;

    // Guards resizing only: I/O to disjoint ranges proceeds concurrently, as on a real disk.
    private readonly Lock _resizeLock = new();
    private byte[] _data;
    private bool[] _written;

    public MemoryNode(long size, bool readOnly = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, Array.MaxLength);
        _data = new byte[size];
        _written = new bool[(size + PageSize - 1) / PageSize];
        Capabilities = (readOnly ? NodeCapabilities.ReadOnly : NodeCapabilities.None) | NodeCapabilities.Fua
            | NodeCapabilities.Discard | NodeCapabilities.WriteZeroes | NodeCapabilities.FastZero
            | NodeCapabilities.MultiConnection | NodeCapabilities.Resize;
    }

    public string DriverName => "memory";

    public string? FileName => null;

    public long Size => _data.LongLength;

    public NodeCapabilities Capabilities { get; }

    public NodeLimits Limits => NodeLimits.Default with { RequestAlignment = 1 };

    public IBlockNode? Backing => null;

    /// <summary>How many flushes were requested (tests check that durability was asked for).</summary>
    public int FlushCount { get; private set; }

    /// <summary>A copy of the whole content, for comparisons in tests.</summary>
    public byte[] ToArray() => (byte[])_data.Clone();

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, buffer.Length);
        _data.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None,
        CancellationToken cancellationToken = default)
    {
        CheckWritable();
        CheckRange(offset, data.Length);
        data.Span.CopyTo(_data.AsSpan((int)offset));
        MarkWritten(offset, data.Length, true);
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None,
        CancellationToken cancellationToken = default)
    {
        CheckWritable();
        CheckRange(offset, length);
        _data.AsSpan((int)offset, (int)length).Clear();
        if ((flags & ZeroFlags.MayUnmap) != 0)
        {
            UnmarkWholePages(offset, length);
        }
        else
        {
            MarkWritten(offset, length, true);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        CheckRange(offset, length);
        // Like a punched hole: whole pages become zero and unwritten; partial pages are left alone.
        long first = (offset + PageSize - 1) / PageSize;
        long last = (offset + length) / PageSize;
        for (long p = first; p < last; p++)
        {
            _data.AsSpan((int)(p * PageSize), (int)Math.Min(PageSize, Size - (p * PageSize))).Clear();
        }

        UnmarkWholePages(offset, length);
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        FlushCount++;
        return ValueTask.CompletedTask;
    }

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, length);
        long page = offset / PageSize;
        bool written = _written[page];
        long end = Math.Min(offset + length, (page + 1) * PageSize);
        for (page++; end < offset + length && _written[page] == written; page++)
        {
            end = Math.Min(offset + length, (page + 1) * PageSize);
        }

        var state = written ? BlockState.Allocated | BlockState.Data : BlockState.Allocated | BlockState.Zero;
        return ValueTask.FromResult(new BlockExtent(offset, end - offset, state, written ? offset : -1));
    }

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        ArgumentOutOfRangeException.ThrowIfNegative(newSize);
        lock (_resizeLock)
        {
            Array.Resize(ref _data, checked((int)newSize));
            Array.Resize(ref _written, (int)((newSize + PageSize - 1) / PageSize));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private void CheckWritable()
    {
        if ((Capabilities & NodeCapabilities.ReadOnly) != 0)
        {
            throw BlockException.ReadOnly("the memory node is read-only");
        }
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Size - length)
        {
            throw BlockException.Invalid($"request {offset}+{length} is outside the {Size}-byte memory node");
        }
    }

    private void MarkWritten(long offset, long length, bool value)
    {
        if (length == 0)
        {
            return;
        }

        for (long p = offset / PageSize; p <= (offset + length - 1) / PageSize; p++)
        {
            _written[p] = value;
        }
    }

    private void UnmarkWholePages(long offset, long length)
    {
        long first = (offset + PageSize - 1) / PageSize;
        long last = (offset + length) / PageSize;
        if (offset + length == Size)
        {
            last = _written.LongLength;
        }

        for (long p = first; p < last; p++)
        {
            _written[p] = false;
        }
    }
}
