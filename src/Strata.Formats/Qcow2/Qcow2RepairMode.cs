namespace Strata.Formats.Qcow2;

/// <summary>What <c>check -r</c> may fix.</summary>
/// <remarks>The old spelling of <see cref="Block.ImageRepair"/>, kept for callers that hold a <see cref="Qcow2Node"/>.</remarks>
public enum Qcow2RepairMode
{
    None,

    /// <summary>-r leaks: drop refcounts that no metadata uses.</summary>
    Leaks,

    /// <summary>-r all: also fix refcounts that are too low and other repairable corruption.</summary>
    All,
}
