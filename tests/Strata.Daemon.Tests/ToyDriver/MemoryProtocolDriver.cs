using System.Collections.Concurrent;
using Strata.Block;
using Strata.Block.Drivers;

namespace Strata.Daemon.Tests.ToyDriver;

/// <summary>
/// A protocol whose images live in this process's memory, by name: <c>mem:NAME</c>. The store keeps
/// each image after it is closed, so a test can look at the bytes a format wrote.
/// </summary>
internal sealed class MemoryProtocolDriver : IProtocolDriver
{
    private readonly ConcurrentDictionary<string, MemoryNode> _images = new(StringComparer.Ordinal);

    public string Name => "mem";

    /// <summary>The bytes of the image called <paramref name="name"/>.</summary>
    public MemoryNode Image(string name) => _images[name];

    public ValueTask<IBlockNode> OpenAsync(ImageLocator locator, ProtocolOpenOptions options, CancellationToken cancellationToken = default)
        => _images.TryGetValue(locator.Target, out var image)
            ? ValueTask.FromResult<IBlockNode>(image)
            : throw new BlockException(BlockError.Io, $"Could not open '{locator}': no such image in memory");

    public ValueTask<IBlockNode> CreateAsync(ImageLocator locator, long size, bool mustBeNew, CancellationToken cancellationToken = default)
    {
        var image = new MemoryNode(size);
        if (!mustBeNew)
        {
            _images[locator.Target] = image;
        }
        else if (!_images.TryAdd(locator.Target, image))
        {
            throw BlockException.Invalid($"Could not create '{locator}': it exists");
        }

        return ValueTask.FromResult<IBlockNode>(image);
    }

    public ValueTask DeleteAsync(ImageLocator locator, CancellationToken cancellationToken = default)
    {
        _images.TryRemove(locator.Target, out _);
        return ValueTask.CompletedTask;
    }
}
