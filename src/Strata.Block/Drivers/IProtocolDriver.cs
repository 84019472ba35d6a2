namespace Strata.Block.Drivers;

/// <summary>
/// A protocol driver: reaches the bytes of an image where they live (a local file; later a Ceph
/// pool, an object store). A format driver sits on the node it opens, so every format works on
/// every protocol.
/// </summary>
/// <remarks>
/// Contract: <see cref="OpenAsync"/> and <see cref="CreateAsync"/> are given a locator of this
/// driver's protocol (the registry routes by <see cref="ImageLocator.Protocol"/>); the node they
/// return is the caller's to dispose. Nodes take no locks until
/// <see cref="IBlockNode.SetPermissions"/> is called: the opener takes them before a format reads
/// its header.
/// </remarks>
public interface IProtocolDriver
{
    /// <summary>The protocol's name, and the scheme of its locators ("file", "rbd").</summary>
    string Name { get; }

    /// <summary>Opens an existing image's bytes; <paramref name="options"/> say how.</summary>
    ValueTask<IBlockNode> OpenAsync(ImageLocator locator, ProtocolOpenOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// Creates the image's bytes, <paramref name="size"/> of them reading as zeroes, and opens them
    /// read-write. With <paramref name="mustBeNew"/> anything already there is refused; otherwise an
    /// existing image is emptied and reused.
    /// </summary>
    ValueTask<IBlockNode> CreateAsync(ImageLocator locator, long size, bool mustBeNew, CancellationToken cancellationToken = default);

    /// <summary>Removes an image this driver created, when writing it failed.</summary>
    ValueTask DeleteAsync(ImageLocator locator, CancellationToken cancellationToken = default);
}
