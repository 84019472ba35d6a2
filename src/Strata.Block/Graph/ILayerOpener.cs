namespace Strata.Block.Graph;

/// <summary>
/// What a drive needs from the image drivers to build and change its graph: open a chain or one
/// layer, create an overlay, reopen a layer, remove a file it created. The engine names no driver and
/// no file system; whoever makes a drive hands it one of these.
/// </summary>
/// <remarks>
/// Contract for implementers: a node returned here is owned by the caller, which closes it; a chain
/// is returned as a <see cref="LayerChain"/> whose edges do not own their nodes. Nothing here touches
/// a node already in a drive's graph except <see cref="ReopenAsync"/>, which only changes the
/// permissions of the layer it reopens. Failures are <see cref="BlockException"/>s with one line
/// naming the file, and leave no file behind.
/// </remarks>
public interface ILayerOpener
{
    /// <summary>Opens the image at <paramref name="file"/> and its backing chain (every layer below the top read-only).</summary>
    ValueTask<LayerChain> OpenChainAsync(string file, LayerOpenOptions options, CancellationToken cancellationToken = default);

    /// <summary>Opens one image without its backing chain (a snapshot's overlay, before it is attached).</summary>
    ValueTask<IBlockNode> OpenLayerAsync(string file, LayerOpenOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// Creates an overlay at <paramref name="file"/>, of <paramref name="backing"/>'s size, recording
    /// <paramref name="backing"/>'s file and format as its backing file. Only a new file is made (no
    /// link followed, nothing replaced), and a failure or a crash half-way leaves nothing under
    /// <paramref name="file"/>.
    /// </summary>
    ValueTask CreateOverlayAsync(string file, IBlockNode backing, CancellationToken cancellationToken = default);

    /// <summary>
    /// Opens <paramref name="layer"/>'s image again, read-only or read-write as <paramref name="options"/>
    /// say, in the layer's own format, holding <paramref name="wanted"/>, with no moment at which neither
    /// open holds the image (docs/locking.md). The backing chain is not opened: the caller moves the
    /// layer's backing over and swaps the new node in. On failure <paramref name="layer"/> holds
    /// <paramref name="current"/> again, as before the call.
    /// </summary>
    ValueTask<IBlockNode> ReopenAsync(IBlockNode layer, NodePermissions current, NodePermissions wanted, LayerOpenOptions options,
        CancellationToken cancellationToken = default);

    /// <summary>
    /// The image's full name (<see cref="Drivers.ImageLocator.FullName"/>): a local file's full path,
    /// a store's locator as written. Never a path made of a locator.
    /// </summary>
    string FullName(string file);

    /// <summary>True when something exists under <paramref name="file"/>.</summary>
    bool Exists(string file);

    /// <summary>Removes a file the caller created (a prepared overlay that was not used).</summary>
    void Delete(string file);

    /// <summary>Where a backing file name recorded in the image at <paramref name="overlayFile"/> points.</summary>
    string ResolveBackingFile(string overlayFile, string backingName);
}
