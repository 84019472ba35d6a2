namespace Strata.Vm.Tests;

/// <summary>The tests that boot the guest: one build for all, one VM at a time (TCG uses a whole core).</summary>
[CollectionDefinition(Name)]
public sealed class GuestVmCollection : ICollectionFixture<GuestBuild>
{
    public const string Name = "guest vm";
}
