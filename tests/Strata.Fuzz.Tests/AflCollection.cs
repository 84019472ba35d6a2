namespace Strata.Fuzz.Tests;

/// <summary>The tests that run afl-fuzz: one at a time (the host has few cores), sharing one instrumented build.</summary>
[CollectionDefinition(Name)]
public sealed class AflCollection : ICollectionFixture<AflBuild>
{
    public const string Name = "afl-fuzz";
}
