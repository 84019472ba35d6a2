using Strata.Block;

namespace Strata.TestKit;

/// <summary>
/// A filter that takes only requests aligned to <see cref="Alignment"/> (storage with 4 KiB blocks,
/// O_DIRECT on a 4Kn disk): it says so in its limits, and fails any request that breaks that contract,
/// so a test sees every unaligned request the gate let through. With <c>yieldFirst</c> every request
/// yields before it runs, so that concurrent requests interleave between a read and a write.
/// </summary>
public sealed class AlignedNode(IBlockNode inner, int alignment = 4096, bool yieldFirst = true) : DelegatingNode(inner)
{
    private long _requests;

    public int Alignment { get; } = alignment;

    /// <summary>Requests that reached the inner node.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    public override NodeLimits Limits => Inner.Limits with { RequestAlignment = Alignment };

    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await CheckAsync("read", offset, buffer.Length);
        await Inner.ReadAsync(offset, buffer, cancellationToken);
    }

    public override async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None,
        CancellationToken cancellationToken = default)
    {
        await CheckAsync("write", offset, data.Length);
        await Inner.WriteAsync(offset, data, flags, cancellationToken);
    }

    public override async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None,
        CancellationToken cancellationToken = default)
    {
        await CheckAsync("write-zeroes", offset, length);
        await Inner.WriteZeroesAsync(offset, length, flags, cancellationToken);
    }

    public override async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await CheckAsync("discard", offset, length);
        await Inner.DiscardAsync(offset, length, cancellationToken);
    }

    public override async ValueTask<BlockExtent> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await CheckAsync("block status", offset, length);
        return await Inner.GetBlockStatusAsync(offset, length, cancellationToken);
    }

    private async ValueTask CheckAsync(string what, long offset, long length)
    {
        if (offset % Alignment != 0 || (length % Alignment != 0 && offset + length != Size))
        {
            throw new InvalidOperationException($"{what} at {offset} length {length} is not aligned to {Alignment} bytes");
        }

        Interlocked.Increment(ref _requests);
        if (yieldFirst)
        {
            await Task.Yield();
        }
    }
}
