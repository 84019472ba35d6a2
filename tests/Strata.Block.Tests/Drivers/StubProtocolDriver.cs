using Strata.Block.Drivers;

namespace Strata.Block.Tests.Drivers;

/// <summary>A protocol driver that only has a name: enough for locators.</summary>
internal sealed class StubProtocolDriver(string name) : IProtocolDriver
{
    public string Name { get; } = name;

    public ValueTask<IBlockNode> OpenAsync(ImageLocator locator, ProtocolOpenOptions options, CancellationToken cancellationToken = default)
        => throw new NotSupportedException();

    public ValueTask<IBlockNode> CreateAsync(ImageLocator locator, long size, bool mustBeNew, CancellationToken cancellationToken = default)
        => throw new NotSupportedException();

    public ValueTask DeleteAsync(ImageLocator locator, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
}
