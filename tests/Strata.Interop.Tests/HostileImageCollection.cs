namespace Strata.Interop.Tests;

/// <summary>
/// Hostile-image tests measure how much memory opening an image allocates; they run alone so that
/// other tests' allocations do not count against them.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HostileImageCollection
{
    public const string Name = "hostile images";
}
