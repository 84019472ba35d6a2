namespace Strata.Formats.Qcow2;

/// <summary>A run of guest bytes with one mapping kind; <see cref="Host"/> is the host offset of the first byte for normal runs.</summary>
internal readonly record struct Qcow2MappedRun(Qcow2ClusterKind Kind, long Host, long Length, ulong Entry);
