using Strata.Block;

namespace Strata.Cli.Img;

/// <summary>One bench run: DEPTH workers, each with its own buffer, pulling request numbers from a shared counter.</summary>
public sealed class BenchRun
{
    private readonly IBlockNode _node;
    private readonly long _count;
    private readonly int _depth;
    private readonly long _start;
    private readonly long _step;
    private readonly long _size;
    private readonly bool _write;
    private readonly long _flushInterval;
    private readonly bool _drain;
    private readonly Memory<byte>[] _buffers;

    /// <summary>The next request number to issue; only ever incremented with Interlocked.</summary>
    private long _next;

    public BenchRun(IBlockNode node, long count, int depth, int bufferSize, long start, long step, bool write, byte pattern,
        long flushInterval, bool drain)
    {
        ArgumentNullException.ThrowIfNull(node);
        _node = node;
        _count = count;
        _depth = (int)Math.Max(1, Math.Min(depth, Math.Max(count, 1)));
        _start = start;
        _step = step;
        _write = write;
        _flushInterval = flushInterval;
        _drain = drain;

        _size = node.Size;
        _buffers = new Memory<byte>[_depth];
        for (int i = 0; i < _depth; i++)
        {
            _buffers[i] = BenchCommand.AlignedBuffer(bufferSize);
            _buffers[i].Span.Fill(pattern);
        }
    }

    public async Task RunAsync()
    {
        if (_flushInterval > 0 && _drain)
        {
            // Drained flushes: run the requests in rounds of the flush interval; each round ends when
            // all of its requests completed, then the flush goes out alone.
            for (long round = 0; round < _count; round += _flushInterval)
            {
                await RunWorkersAsync(Math.Min(_count, round + _flushInterval), flushEach: 0);
                await _node.FlushAsync();
            }

            return;
        }

        await RunWorkersAsync(_count, flushEach: _flushInterval);
    }

    private async Task RunWorkersAsync(long end, long flushEach)
    {
        var workers = new Task[_depth];
        for (int i = 0; i < _depth; i++)
        {
            var buffer = _buffers[i];
            workers[i] = Task.Run(() => WorkAsync(buffer, end, flushEach));
        }

        await Task.WhenAll(workers);

        // Every worker took one number past the end; the next round starts exactly at the end.
        Volatile.Write(ref _next, end);
    }

    private async Task WorkAsync(Memory<byte> buffer, long end, long flushEach)
    {
        long n;
        while ((n = Interlocked.Increment(ref _next) - 1) < end)
        {
            long offset = (_start + (n * _step)) % _size;
            if (offset > _size - buffer.Length)
            {
                // A request would pass the end: wrap to the start (qemu-img would fail it).
                offset = 0;
            }

            if (_write)
            {
                await _node.WriteAsync(offset, buffer);
            }
            else
            {
                await _node.ReadAsync(offset, buffer);
            }

            if (flushEach > 0 && (n + 1) % flushEach == 0)
            {
                await _node.FlushAsync();
            }
        }

    }
}
