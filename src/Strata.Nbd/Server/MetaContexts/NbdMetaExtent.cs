namespace Strata.Nbd.Server.MetaContexts;

/// <summary>A run of bytes with one status value of a metadata context (the context defines the flags).</summary>
public readonly record struct NbdMetaExtent(long Length, uint Flags);
