namespace Strata.Nbd.Client;

/// <summary>One block status descriptor: a length and the context's flags (or value) for it.</summary>
public readonly record struct NbdStatusExtent(uint Length, uint Flags);
