using Strata.Block;

namespace Strata.TestKit;

/// <summary>
/// An overlay held in memory with 4 KiB pages: written pages are allocated here, the rest reads from
/// the backing node (a stand-in for a qcow2 overlay in engine tests that must not depend on qcow2).
/// </summary>
public sealed class MemoryOverlayNode : IBlockNode, IEmptiableLayer
{
    private const int PageSize = 4096;

    // Protects _state and _data against concurrent copy-on-write of the same page.
    private readonly Lock _lock = new();
    private readonly byte[] _data;

    // 0: unallocated, 1: data, 2: zero.
    private readonly byte[] _state;

    public MemoryOverlayNode(IBlockNode? backing, long size)
    {
        Backing = backing;
        _data = new byte[size];
        _state = new byte[(size + PageSize - 1) / PageSize];
    }

    public string DriverName => "memory-overlay";

    public string? FileName => null;

    public long Size => _data.LongLength;

    public NodeCapabilities Capabilities => NodeCapabilities.Discard | NodeCapabilities.WriteZeroes | NodeCapabilities.Fua;

    public NodeLimits Limits => NodeLimits.Default with { RequestAlignment = 1 };

    /// <summary>Settable so tests can re-link a chain after merging a middle layer.</summary>
    public IBlockNode? Backing { get; set; }

    /// <summary>Pages allocated in this layer.</summary>
    public int AllocatedPages
    {
        get
        {
            lock (_lock)
            {
                return _state.Count(s => s != 0);
            }
        }
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        for (int done = 0; done < buffer.Length;)
        {
            long pos = offset + done;
            long page = pos / PageSize;
            int n = (int)Math.Min(buffer.Length - done, ((page + 1) * PageSize) - pos);
            byte state;
            lock (_lock)
            {
                state = _state[page];
                if (state == 1)
                {
                    _data.AsSpan((int)pos, n).CopyTo(buffer.Span[done..]);
                }
            }

            if (state == 2)
            {
                buffer.Span.Slice(done, n).Clear();
            }
            else if (state == 0)
            {
                await BackingReader.ReadAsync(Backing, pos, buffer.Slice(done, n), cancellationToken);
            }

            done += n;
        }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        for (int done = 0; done < data.Length;)
        {
            long pos = offset + done;
            long page = pos / PageSize;
            int n = (int)Math.Min(data.Length - done, ((page + 1) * PageSize) - pos);
            await MaterializeAsync(page, cancellationToken);
            lock (_lock)
            {
                data.Span.Slice(done, n).CopyTo(_data.AsSpan((int)pos));
            }

            done += n;
        }
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
    {
        for (long done = 0; done < length;)
        {
            long pos = offset + done;
            long page = pos / PageSize;
            long n = Math.Min(length - done, ((page + 1) * PageSize) - pos);
            if (n == PageSize || pos + n == Size && pos % PageSize == 0)
            {
                lock (_lock)
                {
                    _state[page] = 2;
                    _data.AsSpan((int)pos, (int)n).Clear();
                }
            }
            else
            {
                await WriteAsync(pos, new byte[n], WriteFlags.None, cancellationToken);
            }

            done += n;
        }
    }

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
        => WriteZeroesAsync(offset, length, ZeroFlags.MayUnmap, cancellationToken);

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            long page = offset / PageSize;
            byte state = _state[page];
            long end = Math.Min(offset + length, (page + 1) * PageSize);
            for (page++; end < offset + length && _state[page] == state; page++)
            {
                end = Math.Min(offset + length, (page + 1) * PageSize);
            }

            var kind = state switch
            {
                1 => BlockState.Allocated | BlockState.Data,
                2 => BlockState.Allocated | BlockState.Zero,
                _ => BlockState.Unallocated,
            };
            return ValueTask.FromResult(new BlockExtent(offset, end - offset, kind));
        }
    }

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
        => throw BlockException.NotSupported("memory overlays have a fixed size");

    public ValueTask MakeEmptyAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            Array.Clear(_state);
            Array.Clear(_data);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private async ValueTask MaterializeAsync(long page, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_state[page] != 0)
            {
                if (_state[page] == 2)
                {
                    _state[page] = 1;
                }

                return;
            }
        }

        long start = page * PageSize;
        var copy = new byte[(int)Math.Min(PageSize, Size - start)];
        await BackingReader.ReadAsync(Backing, start, copy, cancellationToken);
        lock (_lock)
        {
            if (_state[page] == 0)
            {
                copy.CopyTo(_data.AsSpan((int)start));
                _state[page] = 1;
            }
            else if (_state[page] == 2)
            {
                _state[page] = 1;
            }
        }
    }
}
