using Strata.Block;

namespace Strata.TestKit;

/// <summary>
/// Wraps a node and simulates a crash: after a chosen number of writes (writes, write-zeroes,
/// discards and flushes all count) every further modifying request fails and never reaches the inner
/// node, as if the process died at that point. Reads keep working so a test can look around.
/// </summary>
public sealed class FaultInjectingNode : IBlockNode
{
    private readonly IBlockNode _inner;
    private readonly bool _ownsInner;
    private long _writesLeft;
    private long _writesSeen;

    /// <param name="writesBeforeCrash">How many modifying requests pass before the crash; negative: never crash.</param>
    public FaultInjectingNode(IBlockNode inner, long writesBeforeCrash = -1, bool ownsInner = true)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        _ownsInner = ownsInner;
        _writesLeft = writesBeforeCrash < 0 ? long.MaxValue : writesBeforeCrash;
    }

    /// <summary>Puts a fault-injecting node (crashing after <paramref name="writesBeforeCrash"/>) above the gate's root, under a drain.</summary>
    public static async Task<FaultInjectingNode> WrapRootAsync(RequestGate gate, long writesBeforeCrash = -1)
    {
        ArgumentNullException.ThrowIfNull(gate);
        var node = new FaultInjectingNode(gate.Root, writesBeforeCrash);
        using var drain = await gate.DrainAsync();
        gate.ReplaceRoot(node, drain);
        return node;
    }

    /// <summary>Modifying requests that reached this node (passed or refused).</summary>
    public long WritesSeen => Interlocked.Read(ref _writesSeen);

    public bool Crashed => Interlocked.Read(ref _writesLeft) < 0;

    public string DriverName => _inner.DriverName;

    public string? FileName => _inner.FileName;

    public long Size => _inner.Size;

    public NodeCapabilities Capabilities => _inner.Capabilities;

    public NodeLimits Limits => _inner.Limits;

    public IBlockNode? Backing => _inner.Backing;

    /// <summary>When true, reads fail too once the crash happened (without counting as writes).</summary>
    public bool FailReads { get; set; }

    /// <summary>The error refused requests fail with; <see cref="BlockError.Io"/> unless set.</summary>
    public BlockError Error { get; set; } = BlockError.Io;

    /// <summary>Arms (or re-arms) the crash: <paramref name="writesBeforeCrash"/> more writes pass.</summary>
    public void CrashAfter(long writesBeforeCrash) => Interlocked.Exchange(ref _writesLeft, writesBeforeCrash);

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (FailReads && Crashed)
        {
            throw new BlockException(Error, $"injected crash: read at {offset} refused");
        }

        return _inner.ReadAsync(offset, buffer, cancellationToken);
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        Pass("write", offset);
        return _inner.WriteAsync(offset, data, flags, cancellationToken);
    }

    public ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
    {
        Pass("write-zeroes", offset);
        return _inner.WriteZeroesAsync(offset, length, flags, cancellationToken);
    }

    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        Pass("discard", offset);
        return _inner.DiscardAsync(offset, length, cancellationToken);
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        Pass("flush", 0);
        return _inner.FlushAsync(cancellationToken);
    }

    public ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
        => _inner.GetBlockStatusAsync(offset, length, cancellationToken);

    public ValueTask ResizeAsync(long newSize, CancellationToken cancellationToken = default)
    {
        Pass("resize", newSize);
        return _inner.ResizeAsync(newSize, cancellationToken);
    }

    public ValueTask DisposeAsync() => _ownsInner ? _inner.DisposeAsync() : ValueTask.CompletedTask;

    private void Pass(string what, long offset)
    {
        Interlocked.Increment(ref _writesSeen);
        if (Interlocked.Decrement(ref _writesLeft) < 0)
        {
            throw new BlockException(Error, $"injected crash: {what} at {offset} refused");
        }
    }
}
