using Strata.Block;
using Strata.Nbd.Protocol;

namespace Strata.Nbd.Server.MetaContexts;

/// <summary>
/// A context whose runs are those of the drive's chain (<see cref="RequestGate.GetBlockStatusAsync"/>),
/// each given flags by <paramref name="flags"/>: the two contexts every export offers.
/// </summary>
public sealed class ChainStatusContext(string name, RequestGate gate, Func<ChainExtent, uint> flags) : INbdMetaContext
{
    public string Name { get; } = name;

    /// <summary>
    /// "base:allocation" (proto.md, "base:allocation metadata context"): NBD_STATE_HOLE where no layer
    /// of the chain stores data, NBD_STATE_ZERO where the bytes read as zeroes.
    /// </summary>
    public static ChainStatusContext BaseAllocation(RequestGate gate) => new(NbdWire.BaseAllocation, gate,
        static e => (e.IsData && e.IsPresent ? 0 : NbdWire.StateHole) | (e.IsZero ? NbdWire.StateZero : 0));

    /// <summary>
    /// "qemu:allocation-depth" (qemu docs/interop/nbd.rst): 0 where no layer allocates the bytes, 1
    /// where the top layer does, N where the (N-1)th backing file does.
    /// </summary>
    public static ChainStatusContext AllocationDepth(RequestGate gate) => new(NbdWire.QemuAllocationDepth, gate,
        static e => e.IsPresent ? (uint)e.Depth + 1 : 0);

    public async ValueTask<NbdMetaExtent> GetExtentAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var extent = await gate.GetBlockStatusAsync(offset, length, cancellationToken);
        return new(extent.Length, flags(extent));
    }
}
