using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Formats.Raw;

/// <summary>The "file" protocol: an image's bytes in a local file (<see cref="RawFileNode"/>).</summary>
public sealed class FileProtocolDriver : IProtocolDriver
{
    public string Name => ImageLocator.FileProtocol;

    /// <remarks>The node is named as the locator was given, so messages show the user's spelling.</remarks>
    public ValueTask<IBlockNode> OpenAsync(ImageLocator locator, ProtocolOpenOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        ArgumentNullException.ThrowIfNull(options);
        return ValueTask.FromResult<IBlockNode>(RawFileNode.Open(locator.Text, options.ReadOnly, options.Direct));
    }

    public ValueTask<IBlockNode> CreateAsync(ImageLocator locator, long size, bool mustBeNew, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        return ValueTask.FromResult<IBlockNode>(RawFileNode.Create(locator.Text, size, mustBeNew ? FileCreation.New : FileCreation.ReplaceRegularFile));
    }

    public ValueTask DeleteAsync(ImageLocator locator, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        File.Delete(locator.Text);
        return ValueTask.CompletedTask;
    }
}
