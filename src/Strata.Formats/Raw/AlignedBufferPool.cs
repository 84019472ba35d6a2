namespace Strata.Formats.Raw;

/// <summary>
/// Bounce buffers of one size for one file's direct I/O. A few are kept for reuse, so that steady
/// traffic allocates nothing (fresh native memory would also fault in page by page); a burst beyond
/// them gets buffers of its own, freed when given back.
/// </summary>
internal sealed class AlignedBufferPool(int bufferSize, int alignment, int keep) : IDisposable
{
    // Protects _free and _disposed.
    private readonly Lock _lock = new();
    private readonly Stack<AlignedBuffer> _free = new();
    private bool _disposed;

    public int BufferSize => bufferSize;

    public AlignedBuffer Rent()
    {
        lock (_lock)
        {
            if (_free.TryPop(out var buffer))
            {
                return buffer;
            }
        }

        return new AlignedBuffer(bufferSize, alignment);
    }

    public void Return(AlignedBuffer buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        lock (_lock)
        {
            if (!_disposed && _free.Count < keep)
            {
                _free.Push(buffer);
                return;
            }
        }

        buffer.Dispose();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            while (_free.TryPop(out var buffer))
            {
                buffer.Dispose();
            }
        }
    }
}
