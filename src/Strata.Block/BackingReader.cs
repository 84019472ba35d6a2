namespace Strata.Block;

/// <summary>Reads from a backing node that may be shorter than its overlay (or absent): the rest is zeroes.</summary>
public static class BackingReader
{
    public static async ValueTask ReadAsync(IBlockNode? backing, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        long available = backing is null ? 0 : Math.Clamp(backing.Size - offset, 0, buffer.Length);
        if (available > 0)
        {
            await backing!.ReadAsync(offset, buffer[..(int)available], cancellationToken);
        }

        buffer.Span[(int)available..].Clear();
    }
}
