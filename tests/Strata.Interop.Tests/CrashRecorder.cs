using Strata.Block;

namespace Strata.Interop.Tests;

/// <summary>
/// Remembers which writes of a crash scenario completed, and how many of them a completed flush made
/// durable; after the crash those must read back.
/// </summary>
internal sealed class CrashRecorder
{
    private readonly List<(long Offset, byte[] Data)> _completed = [];

    public IReadOnlyList<(long Offset, byte[] Data)> Completed => _completed;

    /// <summary>How many of <see cref="Completed"/> were followed by a completed flush.</summary>
    public int Durable { get; private set; }

    /// <summary>Unflushed file writes a simulated power loss dropped after the crash.</summary>
    public int LostWrites { get; set; }

    /// <summary>The virtual size the scenario had reached at the last completed flush.</summary>
    public long DurableSize { get; private set; }

    public async Task WriteAsync(IBlockNode node, long offset, byte[] data)
    {
        await node.WriteAsync(offset, data);
        _completed.Add((offset, data));
    }

    public async Task FlushAsync(IBlockNode node)
    {
        await node.FlushAsync();
        Durable = _completed.Count;
        DurableSize = node.Size;
    }
}
